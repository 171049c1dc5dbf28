const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

// The dev provider's sign-in + consent page: pick an account, choose which claims to share.
export function consentPage({ uid, clientId, scope, users, claims }) {
  const accounts = Object.entries(users).map(([key, user], i) => `
      <label><input type="radio" name="user" value="${key}" ${i === 0 ? 'checked' : ''}> ${escape(user.label)}</label>`).join('');
  const claimBoxes = claims.map((claim) => `
      <label><input type="checkbox" name="claim" value="${claim}" checked> ${claim}</label>`).join('');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — logi (dev)</title>
<style>body{font:16px system-ui;max-width:32rem;margin:3rem auto}fieldset{margin:1rem 0}label{display:block;margin:.3rem 0}</style></head>
<body>
  <h1>logi (development provider)</h1>
  <p><strong>${escape(clientId)}</strong> asks for: <code>${escape(scope)}</code></p>
  <form method="post" action="/interaction/${escape(uid)}">
    <fieldset><legend>Sign in as</legend>${accounts}</fieldset>
    <fieldset><legend>Share with the app</legend>${claimBoxes}</fieldset>
    <button type="submit" name="action" value="login">Continue</button>
    <button type="submit" name="action" value="cancel">Cancel</button>
  </form>
</body></html>`;
}
