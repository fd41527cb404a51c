// A real OpenID Connect provider for the test suite: oidc-provider on a loopback port of
// its own, issuing access tokens as JWTs (RFC 9068) for the resource a client asks for,
// with a `groups` claim taken from the client's registration; and signing users in on
// its development login and consent pages, their ID tokens carrying the `groups` the
// configuration gives each login.
//
//   node idp.mjs '{"clients": [...], "accessTokenSeconds": 300, "users": {"alice": ["eng"]}}'
//
// Prints `issuer <url>` once it listens. Signing keys are made at start. `POST /test/sign`
// signs the JSON claims it is sent with the provider's own key, for tokens the provider
// would not issue by itself (expired ones, another issuer's).
import { createServer } from 'node:http';
import { createSign, generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const b64url = (data) => Buffer.from(data).toString('base64url');

function sign(key, claims) {
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'rs1' }));
  const input = `${header}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(key).toString('base64url');
  return `${input}.${signature}`;
}

const config = JSON.parse(process.argv[2] ?? '{}');
const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const provider = new Provider(issuer, {
    clients: config.clients ?? [],
    jwks: { keys: [{ ...rsa.export({ format: 'jwk' }), kid: 'rs1', alg: 'RS256', use: 'sig' }] },
    extraClientMetadata: { properties: ['groups'] },
    claims: { openid: ['sub'], groups: ['groups'] },
    conformIdTokenClaims: false,
    findAccount: (ctx, sub) => ({
      accountId: sub,
      claims: () => ({ sub, groups: config.users?.[sub] ?? [] }),
    }),
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
  const served = provider.callback();
  server.on('request', (req, res) => {
    if (req.method !== 'POST' || req.url !== '/test/sign') {
      served(req, res);
      return;
    }
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      res.setHeader('content-type', 'text/plain');
      res.end(sign(rsa, JSON.parse(body)));
    });
  });
  console.log(`issuer ${issuer}`);
});
