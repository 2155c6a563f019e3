// A minimal router over the History API; every path lives under the console's base (/console/).
import { useEffect, useState } from "react";

export const BASE = import.meta.env.BASE_URL.replace(/\/$/, "");

export interface Route {
  path: string;
  params: URLSearchParams;
}

function current(): Route {
  const path = window.location.pathname.startsWith(BASE)
    ? window.location.pathname.slice(BASE.length) || "/"
    : "/";
  return { path, params: new URLSearchParams(window.location.search) };
}

export function navigate(to: string): void {
  window.history.pushState(null, "", BASE + to);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    window.addEventListener("popstate", update);
    return () => window.removeEventListener("popstate", update);
  }, []);
  return route;
}
