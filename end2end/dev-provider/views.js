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

// The code the second-factor step accepts (a development provider: it says so on the page).
export const MFA_CODE = '246810';

// The second-factor step an authorization with acr_values=mfa requires.
export function mfaPage({ uid, user, granted, error }) {
  const hidden = [`<input type="hidden" name="user" value="${escape(user)}">`, ...granted.map((claim) => `<input type="hidden" name="claim" value="${escape(claim)}">`)].join('');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Second factor — logi (dev)</title>
<style>body{font:16px system-ui;max-width:32rem;margin:3rem auto}label{display:block;margin:1rem 0}</style></head>
<body>
  <h1>Confirm it is you</h1>
  <p>The app asked for a stronger sign-in. Enter the code from your authenticator (development provider: <code>${MFA_CODE}</code>).</p>
  ${error ? `<p role="alert">${escape(error)}</p>` : ''}
  <form method="post" action="/interaction/${escape(uid)}">
    ${hidden}
    <label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" autofocus></label>
    <button type="submit" name="action" value="verify">Verify</button>
    <button type="submit" name="action" value="cancel">Cancel</button>
  </form>
</body></html>`;
}
