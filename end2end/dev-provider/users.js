// The dev provider's test accounts, shaped like logi's: `sub` is the stable id;
// profile claims come only from userinfo, and only those the user consents to.
export const USERS = {
  alice: {
    sub: 'logi-user-alice',
    label: 'Alice — a normal account',
    claims: { email: 'alice@example.com', email_verified: true, name: 'Alice Example', nickname: 'alice' },
  },
  anon: {
    sub: 'logi-user-anon',
    label: 'Anonymous account (synthetic @1pass.internal email)',
    claims: { anonymous: true, email: 'anon+5f2b9c1d@1pass.internal', email_verified: false },
  },
  noemail: {
    sub: 'logi-user-noemail',
    label: 'Nora — an account with no email',
    claims: { name: 'Nora Noemail', nickname: 'nora' },
  },
};

// The claims a user can grant or withhold on the consent screen (logi's per-claim consent).
export const CONSENTABLE_CLAIMS = ['email', 'name', 'nickname'];

// Throwaway accounts for tests that need a logi identity nobody else uses:
// `login_hint=test-<id>` signs in as `logi-user-test-<id>`.
const THROWAWAY = /^test-[a-z0-9-]{1,40}$/;

function throwaway(name) {
  return { sub: `logi-user-${name}`, label: name, claims: { email: `${name}@example.test`, email_verified: true, name: `Test ${name}` } };
}

/** The account a login_hint (or the consent form) names, if any. */
export function userByName(name) {
  if (Object.hasOwn(USERS, name)) return USERS[name];
  return THROWAWAY.test(name ?? '') ? throwaway(name) : undefined;
}

export function userBySub(sub) {
  return Object.values(USERS).find((user) => user.sub === sub) ?? userByName(sub.replace(/^logi-user-/, ''));
}
