// Container healthcheck (the image has no curl): healthy when the JWKS endpoint answers 200 with
// a JSON document that has a `keys` array, i.e. Better Auth is up and its database reachable.
const port = Number(process.env.PORT ?? 3000);
try {
  const response = await fetch(`http://127.0.0.1:${port}/api/auth/jwks`, {
    signal: AbortSignal.timeout(3000),
  });
  const body = await response.json();
  process.exit(response.status === 200 && Array.isArray(body?.keys) ? 0 : 1);
} catch {
  process.exit(1);
}
