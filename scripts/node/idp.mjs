// A real OpenID Connect provider for the test suite: oidc-provider on a loopback port of
// its own, issuing access tokens as JWTs (RFC 9068) for the resource a client asks for,
// with a `groups` claim taken from the client's registration.
//
//   node idp.mjs '{"clients": [...], "accessTokenSeconds": 300}'
//
// Prints `issuer <url>` once it listens. Signing keys are made at start.
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2] ?? '{}');
const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const provider = new Provider(issuer, {
    clients: config.clients ?? [],
    jwks: { keys: [{ ...rsa.export({ format: 'jwk' }), kid: 'rs1', alg: 'RS256', use: 'sig' }] },
    extraClientMetadata: { properties: ['groups'] },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => ({
          scope: 'mcp',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: config.accessTokenSeconds ?? 300,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (ctx) => {
      const groups = ctx.oidc.client?.groups;
      return groups ? { groups } : undefined;
    },
  });
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});
