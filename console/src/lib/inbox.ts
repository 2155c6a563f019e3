// The inbox as the console holds it: rows keyed by item id, kept current by `inboxChanged`.
// Applying a change is idempotent (by item id, and by `seq`: an event at or before the last one
// applied is ignored), so a replay after a reconnect can neither duplicate nor resurrect a row.
import type { InboxClaim, InboxFilter, InboxItemFieldsFragment, InboxChangeKind } from "../gql/graphql";

export interface InboxRow {
  item: InboxItemFieldsFragment;
  dueAt: string | null;
  overdue: boolean;
  claim: InboxClaim | null;
  /** Arrived live since the page was loaded. */
  fresh: boolean;
}

export interface InboxView {
  rows: InboxRow[];
  /** `seq` of the last change applied (0: none since the page was loaded). */
  lastSeq: number;
}

export interface InboxChangeLike {
  seq: number;
  kind: InboxChangeKind;
  itemId: string;
  item?: InboxItemFieldsFragment | null;
  /** The claim state of the reader's steps of the item after the change (`InboxEdge.claim`). */
  claim?: InboxClaim | null;
}

/** Earliest deadline of the item's active steps: what a live row shows before a reload. */
export function earliestDue(item: InboxItemFieldsFragment): string | null {
  const due = item.steps
    .filter((s) => s.stepState === "ACTIVE" && s.dueAt)
    .map((s) => s.dueAt as string)
    .sort();
  return due[0] ?? null;
}

/** Whether a pushed item belongs in a view filtered by `filter` (the filters the console sets). */
export function matchesFilter(item: InboxItemFieldsFragment, filter: InboxFilter): boolean {
  if (filter.states?.length && !filter.states.includes(item.state)) return false;
  if (filter.kinds?.length && !filter.kinds.includes(item.kind)) return false;
  if (filter.risks?.length && !filter.risks.includes(item.risk)) return false;
  if (filter.priorityMin != null && item.priority < filter.priorityMin) return false;
  if (filter.text && !item.title.toLowerCase().includes(filter.text.toLowerCase())) return false;
  return true;
}

/** The view after one pushed change. */
export function applyChange(view: InboxView, change: InboxChangeLike, filter: InboxFilter): InboxView {
  if (change.seq <= view.lastSeq) return view;
  const lastSeq = change.seq;
  const at = view.rows.findIndex((row) => row.item.id === change.itemId);
  const item = change.item;
  if (change.kind === "LEFT" || !item || !matchesFilter(item, filter)) {
    return { rows: at < 0 ? view.rows : view.rows.filter((_, i) => i !== at), lastSeq };
  }
  if (at >= 0) {
    const rows = view.rows.slice();
    rows[at] = { ...rows[at], item, dueAt: earliestDue(item) ?? rows[at].dueAt, claim: change.claim ?? rows[at].claim };
    return { rows, lastSeq };
  }
  const row: InboxRow = { item, dueAt: earliestDue(item), overdue: false, claim: change.claim ?? null, fresh: true };
  return { rows: [row, ...view.rows], lastSeq };
}

/** Rows of a further page appended, leaving out items already shown. */
export function appendPage(view: InboxView, page: InboxRow[]): InboxView {
  const shown = new Set(view.rows.map((row) => row.item.id));
  return { ...view, rows: [...view.rows, ...page.filter((row) => !shown.has(row.item.id))] };
}
