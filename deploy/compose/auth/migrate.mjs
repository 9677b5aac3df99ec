// One-shot schema migration (the `auth-migrate` service in docker-compose.yml), the programmatic
// equivalent of `npx @better-auth/cli migrate`: creates or extends the user, session, account,
// verification and jwks tables. Safe to run on every start; it only adds what is missing.
import { setTimeout as sleep } from "node:timers/promises";
import { getMigrations } from "better-auth/db";
import pg from "pg";
import { auth, pool } from "./auth.mjs";

// How long to wait for PostgreSQL to accept a TCP connection. `db`'s healthcheck already checks
// 127.0.0.1:5432, but the official image restarts the server once after initialising a new data
// directory, and DNS for `db` can lag its start: a few refused connections are normal.
const CONNECT_WAIT_MS = 30_000;
const CONNECT_ATTEMPT_TIMEOUT_MS = 3_000;
// Errors that mean "not reachable yet"; anything else (a wrong password, a missing database) is
// reported at once.
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "57P03", // cannot_connect_now: the database system is starting up or shutting down
]);

function isTransient(error) {
  const codes = [error?.code, ...(error?.errors ?? []).map((inner) => inner?.code)];
  return (
    codes.some((code) => TRANSIENT_CODES.has(code)) ||
    /^Connection terminated/.test(error?.message ?? "")
  );
}

class DatabaseUnreachable extends Error {}

async function waitForDatabase() {
  const connectionString = process.env.DATABASE_URL;
  let where = "the database";
  try {
    const url = new URL(connectionString);
    where = `PostgreSQL at ${url.host}`; // never the password
  } catch {}
  const deadline = Date.now() + CONNECT_WAIT_MS;
  for (let attempt = 1; ; attempt++) {
    const client = new pg.Client({ connectionString, connectionTimeoutMillis: CONNECT_ATTEMPT_TIMEOUT_MS });
    try {
      await client.connect();
      await client.query("SELECT 1");
      if (attempt > 1) console.log(`auth-migrate: ${where} is up (attempt ${attempt})`);
      return;
    } catch (error) {
      const reason = error?.message || error?.code || String(error);
      if (!isTransient(error)) {
        throw new DatabaseUnreachable(`cannot use ${where}: ${reason}`);
      }
      if (Date.now() >= deadline) {
        throw new DatabaseUnreachable(
          `${where} did not accept a connection within ${CONNECT_WAIT_MS / 1000} s ` +
            `(${attempt} attempts; last error: ${reason}). Is the db service healthy? ` +
            `docker compose -f deploy/compose/docker-compose.yml logs db`,
        );
      }
      if (attempt === 1) console.log(`auth-migrate: waiting for ${where} (${reason})`);
      await sleep(1_000);
    } finally {
      await client.end().catch(() => {});
    }
  }
}

try {
  await waitForDatabase();
  const { toBeCreated, toBeAdded, runMigrations } = await getMigrations(auth.options);
  if (toBeCreated.length === 0 && toBeAdded.length === 0) {
    console.log("auth-migrate: schema is up to date");
  } else {
    console.log(
      "auth-migrate: creating tables %j, adding fields to %j",
      toBeCreated.map((t) => t.table),
      toBeAdded.map((t) => t.table),
    );
    await runMigrations();
  }
  // Ask for the JWKS once, so the first signing key pair exists before gatehouse fetches the
  // JWKS (the JWT plugin creates one when the jwks table is empty).
  const jwks = await auth.api.getJwks();
  console.log(`auth-migrate: done, ${jwks?.keys?.length ?? 0} signing key(s)`);
} catch (error) {
  if (error instanceof DatabaseUnreachable) {
    console.error(`auth-migrate: failed: ${error.message}`);
  } else {
    console.error("auth-migrate: failed:", error);
  }
  process.exitCode = 1;
} finally {
  await pool.end();
}
