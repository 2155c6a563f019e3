import { useEffect, useState } from "react";
import { ErrorList } from "../components/ErrorList";
import { ItemTable } from "../components/ItemTable";
import { ItemsChangedSubscription, ItemsPageQuery } from "../documents";
import type { ItemScope, ItemsChangedSubscription as ItemsChangedMessage, ItemsPageQuery as ItemsPage } from "../gql/graphql";
import { appendPage, applyChange, earliestDue, type InboxRow, type InboxView } from "../lib/inbox";
import { subscribeResumable } from "../lib/live";
import { useSignedIn } from "../lib/session";

type Edge = ItemsPage["items"]["edges"][number];
const toRow = (edge: Edge): InboxRow => ({ item: edge.node, dueAt: earliestDue(edge.node), overdue: false, claim: null, fresh: false });

/** "My requests" (`items(scope: REQUESTED)`) and history (`DECIDED`), paged, and live: loaded,
 * then `itemsChanged(scope, after: <the page's eventCursor>)` (docs/realtime.md). Items never
 * leave these lists, so every change is an upsert by item id (and `seq`, so a replay is harmless). */
export function Requests({ scope }: { scope: ItemScope }) {
  const { connections } = useSignedIn();
  const [view, setView] = useState<InboxView>({ rows: [], lastSeq: 0 });
  const [page, setPage] = useState<ItemsPage["items"] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    let stop = () => {};
    let cancelled = false;
    setProblem(null);
    connections.http
      .query(ItemsPageQuery, { scope, first: 20 })
      .toPromise()
      .then((result) => {
        if (cancelled) return;
        if (!result.data) return setProblem(result.error?.message ?? "Could not load.");
        const items = result.data.items;
        setPage(items);
        setView({ rows: items.edges.map(toRow), lastSeq: 0 });
        stop = subscribeResumable<ItemsChangedMessage["itemsChanged"]>(
          connections.ws,
          ItemsChangedSubscription,
          "itemsChanged",
          { scope },
          items.eventCursor,
          (message) => {
            if (message.__typename !== "ItemListChange") return;
            setView((current) => applyChange(current, message, {}));
          },
          (error) => setProblem(`Live updates stopped: ${String(error)}`),
        ).stop;
      });
    return () => {
      cancelled = true;
      stop();
    };
  }, [connections, scope]);

  const loadMore = async () => {
    if (!page?.pageInfo.endCursor) return;
    const result = await connections.http.query(ItemsPageQuery, { scope, first: 20, after: page.pageInfo.endCursor }).toPromise();
    if (!result.data) return setProblem(result.error?.message ?? "Could not load.");
    const next = result.data.items;
    setPage({ ...next, facets: page.facets, totalCount: page.totalCount });
    setView((current) => appendPage(current, next.edges.map(toRow)));
  };

  return (
    <section>
      <h1>{scope === "REQUESTED" ? "My requests" : "Decided by me"}</h1>
      {problem && <ErrorList errors={[problem]} />}
      {page && <p className="summary">{page.totalCount}{page.countsExact ? "" : "+"} items (counts as loaded; rows update live)</p>}
      <ItemTable rows={view.rows} testId="requests" />
      {page?.pageInfo.hasNextPage && <button onClick={() => void loadMore()}>Load more</button>}
    </section>
  );
}
