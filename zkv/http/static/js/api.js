// The gateway's JSON routes, with the bearer token when security is on.

const TOKEN_KEY = "zkv-token";

export class AuthError extends Error {}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

/** GET a JSON route; a JSON error body becomes an Error with .code; 401/403 an AuthError. */
export async function getJSON(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers({ Accept: "application/json" }) });
  if (response.status === 401) throw new AuthError("this gateway needs a token");
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const err = new Error(body && body.message ? body.message : `${response.status} ${response.statusText}`);
    err.code = body && body.error ? body.error : String(response.status);
    err.status = response.status;
    throw err;
  }
  return body;
}

export async function postJSON(path, data) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify(data || {}),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body && body.message ? body.message : `${response.status}`);
  return body;
}
