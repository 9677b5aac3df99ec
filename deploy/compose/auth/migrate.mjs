// One-shot schema migration (the `auth-migrate` service in docker-compose.yml), the programmatic
// equivalent of `npx @better-auth/cli migrate`: creates or extends the user, session, account,
// verification and jwks tables. Safe to run on every start; it only adds what is missing.
import { getMigrations } from "better-auth/db";
import { auth, pool } from "./auth.mjs";

try {
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
  console.error("auth-migrate: failed:", error);
  process.exitCode = 1;
} finally {
  await pool.end();
}
