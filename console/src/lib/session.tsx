import { createContext, useContext, useEffect, useState } from "react";
import type { Session } from "./auth";
import type { Connections, LiveStatus } from "./client";

export interface SignedIn {
  session: Session;
  connections: Connections;
}

export const SignedInContext = createContext<SignedIn | null>(null);

export function useSignedIn(): SignedIn {
  const value = useContext(SignedInContext);
  if (!value) throw new Error("not signed in");
  return value;
}

export function useLiveStatus(connections: Connections): LiveStatus {
  const [status, setStatus] = useState<LiveStatus>("connecting");
  useEffect(() => connections.onStatus(setStatus), [connections]);
  return status;
}
