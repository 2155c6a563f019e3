// Sign-in state: a bearer token kept for the browser tab (sessionStorage), and who it names.
const KEY = "signoff.token";

export interface Session {
  token: string;
  user: string;
  tenant: string;
}

/** The claims a console shows (`sub`, `tenant`) from a JWT, without verifying it: the API does. */
export function sessionFromToken(token: string): Session | null {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json) as Record<string, unknown>;
    if (typeof claims.sub !== "string") return null;
    const tenant = typeof claims.tenant === "string" ? claims.tenant : "";
    return { token: token.trim(), user: claims.sub, tenant };
  } catch {
    return null;
  }
}

export function loadSession(): Session | null {
  const token = sessionStorage.getItem(KEY);
  return token ? sessionFromToken(token) : null;
}

export function saveSession(session: Session | null): void {
  if (session) sessionStorage.setItem(KEY, session.token);
  else sessionStorage.removeItem(KEY);
}

export interface DemoUser {
  user: string;
  roles: string[];
  token: string;
}

/** The demo users of `signoff dev` (its dev-only endpoint); empty anywhere else. */
export async function fetchDemoUsers(): Promise<DemoUser[]> {
  try {
    const answer = await fetch("/dev/demo-users");
    if (!answer.ok) return [];
    const body = (await answer.json()) as { users?: DemoUser[] };
    return body.users ?? [];
  } catch {
    return [];
  }
}
