"""Redis storage: keys, codec, Lua scripts, the store and the pipelined connection."""
