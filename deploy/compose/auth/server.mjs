// A minimal Better Auth server: plain node:http, every /api/auth/* request handled by Better Auth.
//
//   POST /api/auth/sign-up/email   {"email","password","name"}  -> session cookie
//   POST /api/auth/sign-in/email   {"email","password"}         -> session cookie
//   GET  /api/auth/token           (with the session cookie)     -> {"token": "<JWT>"}
//   GET  /api/auth/jwks                                          -> the public keys
//   GET  /api/auth/ok                                            -> {"ok": true}
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
