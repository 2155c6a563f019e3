import { useEffect, useState } from "react";
import { ErrorList } from "../components/ErrorList";
import { fetchDemoUsers, sessionFromToken, type DemoUser, type Session } from "../lib/auth";

/** Sign in with a bearer token: one click per demo user under `signoff dev`, or a pasted token
 * (`signoff token --user bob --role change-approver`). */
export function SignIn({ onSignIn }: { onSignIn: (session: Session) => void }) {
  const [users, setUsers] = useState<DemoUser[]>([]);
  const [token, setToken] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    void fetchDemoUsers().then(setUsers);
  }, []);
  const signIn = (value: string) => {
    const session = sessionFromToken(value);
    if (!session) setProblem("That is not a signoff token (a JWT with a subject).");
    else onSignIn(session);
  };
  return (
    <section className="signin">
      <h1>Sign in</h1>
      {users.length > 0 && (
        <>
          <p>Demo users of <code>signoff dev</code>:</p>
          <ul className="demo-users">
            {users.map((user) => (
              <li key={user.user}>
                <button onClick={() => signIn(user.token)}>Sign in as {user.user}</button> <small>{user.roles.join(", ")}</small>
              </li>
            ))}
          </ul>
        </>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          signIn(token);
        }}
      >
        <label>
          Bearer token
          <textarea aria-label="Bearer token" value={token} onChange={(e) => setToken(e.target.value)} rows={3} />
        </label>
        <button type="submit">Sign in with token</button>
      </form>
      {problem && <ErrorList errors={[problem]} />}
    </section>
  );
}
