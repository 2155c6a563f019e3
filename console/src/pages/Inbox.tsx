import { useEffect, useMemo, useState } from "react";
import { Facets } from "../components/Facets";
import { ErrorList } from "../components/ErrorList";
import { InboxChangedSubscription, InboxPageQuery } from "../documents";
import type {
  InboxChangedSubscription as InboxChangedMessage,
  InboxFilter,
  InboxPageQuery as InboxPage,
  InboxSortField,
  ItemKind,
  ItemState,
  RiskLevel,
  SortDirection,
} from "../gql/graphql";
import { appendPage, applyChange, type InboxRow, type InboxView } from "../lib/inbox";
import { subscribeResumable } from "../lib/live";
import { useSignedIn } from "../lib/session";
import { BatchDecisions } from "../components/BatchDecisions";
import { ItemTable } from "../components/ItemTable";

const PAGE_SIZE = 20;
const SORT_FIELDS: InboxSortField[] = ["DUE", "PRIORITY", "RISK", "CREATED"];

type Edge = InboxPage["inbox"]["edges"][number];
const toRow = (edge: Edge): InboxRow => ({
  item: edge.node,
  dueAt: edge.dueAt ?? null,
  overdue: edge.overdue,
  claim: edge.claim,
  fresh: false,
});

function toggled<T>(list: T[] | null | undefined, value: T): T[] {
  const current = list ?? [];
  return current.includes(value) ? current.filter((v) => v !== value) : [...current, value];
}

/** The reviewer's inbox: filters, facets, sort and paging, live after the page's eventCursor. */
export function Inbox() {
  const { connections } = useSignedIn();
  const [filter, setFilter] = useState<InboxFilter>({});
  const [text, setText] = useState("");
  const [sortField, setSortField] = useState<InboxSortField>("DUE");
  const [direction, setDirection] = useState<SortDirection | "">("");
  const [view, setView] = useState<InboxView>({ rows: [], lastSeq: 0 });
  const [page, setPage] = useState<InboxPage["inbox"] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [picked, setPicked] = useState<ReadonlySet<string>>(new Set());
  const sort = useMemo(
    () => ({ field: sortField, direction: direction || null }),
    [sortField, direction],
  );

  useEffect(() => {
    // Load, then subscribe after the cursor of the snapshot the page was read from.
    let stop = () => {};
    let cancelled = false;
    setProblem(null);
    connections.http
      .query(InboxPageQuery, { filter, sort, first: PAGE_SIZE })
      .toPromise()
      .then((result) => {
        if (cancelled) return;
        if (result.error || !result.data) {
          setProblem(result.error?.message ?? "The inbox could not be loaded.");
          return;
        }
        const inbox = result.data.inbox;
        setPage(inbox);
        setView({ rows: inbox.edges.map(toRow), lastSeq: 0 });
        stop = subscribeResumable<InboxChangedMessage["inboxChanged"]>(
          connections.ws,
          InboxChangedSubscription,
          "inboxChanged",
          {},
          inbox.eventCursor,
          (message) => {
            if (message.__typename !== "InboxChange") return;
            setView((current) => applyChange(current, message, filter));
          },
          (error) => setProblem(`Live updates stopped: ${String(error)}`),
        ).stop;
      });
    return () => {
      cancelled = true;
      stop();
    };
  }, [connections, filter, sort]);

  const loadMore = async () => {
    if (!page?.pageInfo.endCursor) return;
    const result = await connections.http
      .query(InboxPageQuery, { filter, sort, first: PAGE_SIZE, after: page.pageInfo.endCursor })
      .toPromise();
    if (!result.data) return setProblem(result.error?.message ?? "The next page could not be loaded.");
    const next = result.data.inbox;
    setPage({ ...next, facets: page.facets, totalCount: page.totalCount });
    setView((current) => appendPage(current, next.edges.map(toRow)));
  };

  const facets = page?.facets;
  return (
    <section>
      <h1>Inbox</h1>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...filter, text: text || null });
        }}
      >
        <input aria-label="Search titles" placeholder="Search titles" value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit">Search</button>
        <label>
          Sort by{" "}
          <select aria-label="Sort by" value={sortField} onChange={(e) => setSortField(e.target.value as InboxSortField)}>
            {SORT_FIELDS.map((f) => (
              <option key={f} value={f}>{f.toLowerCase()}</option>
            ))}
          </select>
        </label>
        <select aria-label="Direction" value={direction} onChange={(e) => setDirection(e.target.value as SortDirection | "")}>
          <option value="">default order</option>
          <option value="ASC">ascending</option>
          <option value="DESC">descending</option>
        </select>
      </form>
      {facets && (
        <Facets
          exact={page.countsExact}
          groups={[
            { name: "State", counts: facets.states, selected: filter.states ?? [], toggle: (v) => setFilter({ ...filter, states: toggled(filter.states, v as ItemState) }) },
            { name: "Kind", counts: facets.kinds, selected: filter.kinds ?? [], toggle: (v) => setFilter({ ...filter, kinds: toggled(filter.kinds, v as ItemKind) }) },
            { name: "Risk", counts: facets.risks, selected: filter.risks ?? [], toggle: (v) => setFilter({ ...filter, risks: toggled(filter.risks, v as RiskLevel) }) },
          ]}
        />
      )}
      {problem && <ErrorList errors={[problem]} />}
      {page && (
        <p className="summary">
          {page.totalCount}
          {page.countsExact ? "" : "+"} items match (counts as loaded; rows update live)
        </p>
      )}
      <ItemTable
        rows={view.rows}
        showClaim
        testId="inbox"
        selection={{
          selected: picked,
          toggle: (id) =>
            setPicked((current) => {
              const next = new Set(current);
              if (!next.delete(id)) next.add(id);
              return next;
            }),
        }}
      />
      {page?.pageInfo.hasNextPage && (
        <button type="button" onClick={loadMore}>Load more</button>
      )}
      {picked.size > 0 && (
        <BatchDecisions rows={view.rows.filter((row) => picked.has(row.item.id))} />
      )}
    </section>
  );
}
