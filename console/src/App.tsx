import { useEffect, useMemo, useState } from "react";
import { Provider } from "urql";
import { loadSession, saveSession, type Session } from "./lib/auth";
import { connect } from "./lib/client";
import { BASE, navigate, useRoute } from "./lib/router";
import { SignedInContext, useLiveStatus } from "./lib/session";
import { Decide } from "./pages/Decide";
import { Inbox } from "./pages/Inbox";
import { ItemDetail } from "./pages/ItemDetail";
import { Requests } from "./pages/Requests";
import { SignIn } from "./pages/SignIn";

function Link({ to, children }: { to: string; children: string }) {
  return (
    <a
      href={BASE + to}
      onClick={(e) => {
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const route = useRoute();
  const connections = useMemo(() => (session ? connect(session.token) : null), [session]);
  useEffect(() => () => void connections?.ws.dispose(), [connections]);
  const status = useLiveStatus(connections ?? { onStatus: () => () => {} } as never);

  // A decision link's page needs no sign-in: the link's token is the credential.
  if (route.path === "/decide") return <Decide token={route.params.get("token") ?? ""} />;
  if (!session || !connections) {
    return (
      <main>
        <SignIn
          onSignIn={(next) => {
            saveSession(next);
            setSession(next);
          }}
        />
      </main>
    );
  }
  const itemMatch = route.path.match(/^\/item\/(.+)$/);
  let page;
  if (itemMatch) page = <ItemDetail id={decodeURIComponent(itemMatch[1])} />;
  else if (route.path === "/requests") page = <Requests scope="REQUESTED" />;
  else if (route.path === "/history") page = <Requests scope="DECIDED" />;
  else page = <Inbox />;
  return (
    <SignedInContext.Provider value={{ session, connections }}>
      <Provider value={connections.http}>
        <header>
          <strong>signoff</strong>
          <nav>
            <Link to="/">Inbox</Link> <Link to="/requests">My requests</Link> <Link to="/history">Decided by me</Link>{" "}
            <a href="/graphql" target="_blank" rel="noreferrer">GraphiQL</a>
          </nav>
          <span className={`live live-${status}`} data-testid="live-status">{status}</span>
          <span className="user" data-testid="user">{session.user}</span>
          <button
            onClick={() => {
              saveSession(null);
              setSession(null);
            }}
          >
            Sign out
          </button>
        </header>
        <main>{page}</main>
      </Provider>
    </SignedInContext.Provider>
  );
}
