// Better Auth configuration shared by server.mjs and migrate.mjs.
//
// Environment:
//   BETTER_AUTH_URL     the URL clients use to reach this server (e.g. http://auth:3000). Its
//                       origin becomes the JWT's `iss` and `aud`, which gatehouse checks.
//   BETTER_AUTH_SECRET  at least 32 random characters (`openssl rand -base64 32`); encrypts the
//                       JWT signing keys stored in PostgreSQL and signs session cookies.
//   DATABASE_URL        postgres://user:password@db:5432/database
//   TRUSTED_ORIGINS     optional, comma-separated extra origins allowed to call the API from a
//                       browser (e.g. your Next.js app at http://localhost:3001).
import { betterAuth } from "better-auth";
import { jwt } from "better-auth/plugins";
import pg from "pg";

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`auth: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const baseURL = required("BETTER_AUTH_URL");
// gatehouse expects iss and aud to equal the *origin* of BETTER_AUTH_URL (scheme://host[:port],
// no path, no trailing slash). Better Auth 1.4's JWT plugin defaults both to the configured
// baseURL; we set them explicitly so they match gatehouse's defaults even if BETTER_AUTH_URL is
// given with a path or a trailing slash.
const origin = new URL(baseURL).origin;

export const pool = new pg.Pool({ connectionString: required("DATABASE_URL"), max: 10 });

export const auth = betterAuth({
  baseURL,
  secret: required("BETTER_AUTH_SECRET"),
  // A pg Pool is used through Better Auth's built-in Kysely adapter (PostgreSQL dialect).
  database: pool,
  emailAndPassword: { enabled: true },
  trustedOrigins: (process.env.TRUSTED_ORIGINS ?? "")
    .split(",")
    .map((value) => value.trim())
    .filter(Boolean),
  plugins: [
    // GET /api/auth/jwks: the public keys (Ed25519 / EdDSA by default), which gatehouse fetches.
    // GET /api/auth/token: a 15-minute JWT for the signed-in session (cookie), sub = user id,
    //   with the user's email and name as claims.
    jwt({
      jwt: {
        issuer: origin,
        audience: origin,
      },
    }),
  ],
});
