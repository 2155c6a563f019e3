import { useEffect, useState } from "react";
import { ErrorList } from "../components/ErrorList";
import { ItemTable } from "../components/ItemTable";
import { ItemsPageQuery } from "../documents";
import type { ItemScope, ItemsPageQuery as ItemsPage } from "../gql/graphql";
import type { InboxRow } from "../lib/inbox";
import { earliestDue } from "../lib/inbox";
import { useSignedIn } from "../lib/session";

type Edge = ItemsPage["items"]["edges"][number];
const toRow = (edge: Edge): InboxRow => ({ item: edge.node, dueAt: earliestDue(edge.node), overdue: false, claim: null, fresh: false });

/** "My requests" (`items(scope: REQUESTED)`) and history (`DECIDED`), paged. */
export function Requests({ scope }: { scope: ItemScope }) {
  const { connections } = useSignedIn();
  const [rows, setRows] = useState<InboxRow[]>([]);
  const [page, setPage] = useState<ItemsPage["items"] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const load = async (after: string | null) => {
    const result = await connections.http.query(ItemsPageQuery, { scope, first: 20, after }).toPromise();
    if (!result.data) return setProblem(result.error?.message ?? "Could not load.");
    setPage(result.data.items);
    const next = result.data.items.edges.map(toRow);
    setRows((current) => (after ? [...current, ...next] : next));
  };
  useEffect(() => {
    void load(null);
  }, [connections, scope]);
  return (
    <section>
      <h1>{scope === "REQUESTED" ? "My requests" : "Decided by me"}</h1>
      {problem && <ErrorList errors={[problem]} />}
      {page && <p className="summary">{page.totalCount}{page.countsExact ? "" : "+"} items</p>}
      <ItemTable rows={rows} testId="requests" />
      {page?.pageInfo.hasNextPage && <button onClick={() => void load(page.pageInfo.endCursor ?? null)}>Load more</button>}
    </section>
  );
}
