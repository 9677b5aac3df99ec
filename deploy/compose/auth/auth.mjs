// Better Auth configuration shared by server.mjs and migrate.mjs.
//
// Environment:
//   BETTER_AUTH_URL     the URL clients use to reach this server (e.g. http://auth:3000), as a bare
//                       origin: scheme://host[:port], no path, no trailing slash (checked below).
//                       It becomes the JWT's `iss` and `aud`, which gatehouse checks, and decides
//                       the session cookie's name (`__Secure-better-auth.session_token` when it is
//                       https, else `better-auth.session_token`), which gatehouse reads.
//   BETTER_AUTH_SECRET  at least 32 random characters (`openssl rand -base64 32`); encrypts the
//                       JWT signing keys stored in PostgreSQL and signs session cookies.
//   DATABASE_URL        postgres://user:password@db:5432/database
//   TRUSTED_ORIGINS     optional, comma-separated extra origins allowed to call the API from a
//                       browser (e.g. your Next.js app at http://localhost:3001).
import { betterAuth } from "better-auth";
import { bearer, jwt } from "better-auth/plugins";
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
// BETTER_AUTH_URL must be a bare origin, exactly as a browser writes it: scheme://host[:port], no
// path, no trailing slash. Two reasons:
// - Better Auth treats a base URL that has a path as the full address of its API and mounts its
//   routes there instead of under /api/auth (https://auth.example.com/auth serves /auth/jwks, not
//   /api/auth/jwks), so gatehouse's JWKS and get-session URLs would answer 404.
// - docker-compose.yml copies the same value (AUTH_PUBLIC_URL) into gatehouse's BETTER_AUTH_URL,
//   from which gatehouse derives the `iss` and `aud` it expects and the session cookie's name,
//   and into GATEHOUSE_TRUSTED_ORIGINS, which holds origins as written; an origin spelt any
//   other way (a trailing slash, an upper-case host, a default port) is refused rather than
//   half-matched.
function bareOrigin(value) {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value ? value : null;
  } catch {
    return null;
  }
}
if (bareOrigin(baseURL) === null) {
  let hint = "";
  try {
    const { origin } = new URL(baseURL);
    if (origin !== "null") hint = ` (did you mean ${origin}?)`;
  } catch {}
  console.error(
    `auth: BETTER_AUTH_URL (AUTH_PUBLIC_URL in deploy/compose/.env) must be a bare origin, ` +
      `scheme://host[:port] with no path and no trailing slash, such as https://auth.example.com; ` +
      `got ${JSON.stringify(baseURL)}${hint}`,
  );
  process.exit(2);
}
const origin = baseURL;

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
    // GET /api/auth/token: a 15-minute JWT for the signed-in session (cookie or bearer). Its claims
    //   are the whole user object (id, name, email, emailVerified, image, createdAt, updatedAt,
    //   plus any additional user fields), with sub = user id, iss = aud = the origin above.
    jwt({
      jwt: {
        // Better Auth's default is the base URL, which is the same string here (a bare origin,
        // checked above); set explicitly because gatehouse expects exactly this origin.
        issuer: origin,
        audience: origin,
      },
    }),
    // Session tokens for clients that keep no cookies (mobile apps, CLIs): every response that
    // sets the session cookie also carries its value in a `set-auth-token` header, and a request
    // with `Authorization: Bearer <that value>` counts as that session, here and in gatehouse
    // (GATEHOUSE_SESSIONS=bearer or both, which looks it up with GET /api/auth/get-session). The
    // plugin itself adds `set-auth-token` to `Access-Control-Expose-Headers` on those responses;
    // this server sends no other CORS headers (see server.mjs).
    bearer(),
  ],
});
