// A minimal Better Auth server: plain node:http, every /api/auth/* request handled by Better Auth.
//
//   POST /api/auth/sign-up/email   {"email","password","name"}  -> session cookie + set-auth-token
//   POST /api/auth/sign-in/email   {"email","password"}         -> session cookie + set-auth-token
//   GET  /api/auth/get-session     (cookie or bearer session)    -> {"session","user"}, or null
//   GET  /api/auth/token           (cookie or bearer session)    -> {"token": "<JWT>"}
//   GET  /api/auth/jwks                                          -> the public keys
//   GET  /api/auth/ok                                            -> {"ok": true}
//
// A POST that carries a cookie must also carry an Origin (or Referer) that Better Auth trusts
// (BETTER_AUTH_URL's origin or TRUSTED_ORIGINS), else it is refused with 403.
//
// No CORS: this server answers no preflight and sends no Access-Control-Allow-Origin, so browser
// pages on other origins cannot read its answers; put it behind the same origin as your web app,
// or add a CORS layer here. The bearer plugin already adds `set-auth-token` to
// Access-Control-Expose-Headers on the answers that carry it; a CORS layer must keep that entry
// (append to the header, do not replace it) or browsers will hide the token from scripts.
import http from "node:http";
import { toNodeHandler } from "better-auth/node";
import { auth, pool } from "./auth.mjs";

const port = Number(process.env.PORT ?? 3000);
const handleAuth = toNodeHandler(auth);

const server = http.createServer((request, response) => {
  if (request.url?.startsWith("/api/auth/")) {
    handleAuth(request, response).catch((error) => {
      console.error("auth: handler failed:", error);
      if (!response.headersSent) response.writeHead(500, { "content-type": "application/json" });
      response.end('{"error":"internal"}');
    });
    return;
  }
  response.writeHead(404, { "content-type": "application/json" });
  response.end('{"error":"not found"}');
});

server.listen(port, "0.0.0.0", () => {
  console.log(`auth: Better Auth listening on :${port} (BETTER_AUTH_URL=${process.env.BETTER_AUTH_URL})`);
});

// docker stop sends SIGTERM: finish in-flight requests, close the pool, exit 0.
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    console.log(`auth: ${signal}, shutting down`);
    server.close(() => pool.end().finally(() => process.exit(0)));
    setTimeout(() => process.exit(0), 10_000).unref();
  });
}
