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

export function userBySub(sub) {
  return Object.values(USERS).find((user) => user.sub === sub);
}
