// Starts a real Redis and a real sidecar on loopback ports for the tests, and stops them.
import { spawn } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

export const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const SIDECAR_PYTHON =
  process.env.SIDECAR_PYTHON || path.resolve(PACKAGE_DIR, "../../.venv/bin/python");
export const ADMIN_TOKEN = "node-test-token";

const children = new Set();

// Should the test process die without its after() hooks, take the servers along.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** A loopback TCP port nothing listens on right now. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(child, graceMs = 2000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resolves true when a Redis at 127.0.0.1:port answers PING with +PONG. */
function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}

/** Starts redis-server on a free loopback port; resolves { port, url, stop }. */
export async function startRedis({ timeoutMs = 5000 } = {}) {
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = track(
      spawn(
        "redis-server",
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        { cwd: os.tmpdir(), stdio: ["ignore", "pipe", "pipe"] },
      ),
    );
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const spawnError = new Promise((resolve) => child.once("error", resolve));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && child.exitCode === null) {
      const error = await Promise.race([spawnError, sleep(50).then(() => null)]);
      if (error) throw new Error(`cannot start redis-server: ${error.message}`);
      if (await ping(port)) {
        return { port, url: `redis://127.0.0.1:${port}/0`, stop: () => stopProcess(child) };
      }
    }
    lastError = new Error(`redis-server on port ${port} did not answer PING:\n${output.slice(-2000)}`);
    await stopProcess(child, 200);
  }
  throw lastError;
}

/**
 * Starts `<python> -m sidecar serve` against `redisUrl` on a loopback port it picks itself,
 * and resolves { address, stop, logs } once it logs "listening". `env` adds or overrides
 * settings; every MAC_* variable of the test's own environment is dropped first.
 */
export async function startSidecar(redisUrl, { env = {}, timeoutMs = 15000 } = {}) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("MAC_")),
  );
  const child = track(
    spawn(SIDECAR_PYTHON, ["-m", "sidecar", "serve"], {
      cwd: os.tmpdir(),
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...base,
        PYTHONUNBUFFERED: "1",
        MAC_REDIS_URL: redisUrl,
        MAC_GRPC_ADDR: "127.0.0.1:0",
        MAC_METRICS_ADDR: "",
        MAC_IDENTITY_SECRET: "node-test-secret-0123456789",
        MAC_ADMIN_TOKEN: ADMIN_TOKEN,
        MAC_DEFAULT_PLAN: "enterprise",
        MAC_DEFAULT_LIMIT: "3",
        MAC_LOG_FORMAT: "json",
        ...env,
      },
    }),
  );
  const logs = [];
  child.stdout.on("data", (d) => logs.push(String(d)));
  const address = await new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => {
      fail(new Error(`the sidecar did not log "listening" within ${timeoutMs} ms`));
    }, timeoutMs);
    function fail(error) {
      clearTimeout(timer);
      child.kill("SIGKILL");
      error.message += `\n${SIDECAR_PYTHON} -m sidecar serve said:\n${logs.join("").slice(-4000)}`;
      reject(error);
    }
    child.once("error", (err) => fail(new Error(`cannot start the sidecar: ${err.message}`)));
    const onExit = (code, sig) => fail(new Error(`the sidecar exited (${code ?? sig})`));
    child.once("exit", onExit);
    child.stderr.on("data", (chunk) => {
      logs.push(String(chunk));
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (!line.includes('"listening"')) continue;
        try {
          const record = JSON.parse(line);
          if (record.event === "listening" && record.grpc) {
            clearTimeout(timer);
            child.off("exit", onExit);
            resolve(record.grpc);
          }
        } catch {
          // not a JSON line: keep reading
        }
      }
    });
  });
  return { address, logs, stop: () => stopProcess(child) };
}

/** Rejects when `promise` takes longer than `ms`. */
export function within(ms, promise, what = "the operation") {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
