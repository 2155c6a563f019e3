import type { InboxRow } from "../lib/inbox";
import { when, words } from "../lib/format";
import { BASE, navigate } from "../lib/router";

/** Rows that can be picked for a batch: which are picked, and how to pick or drop one. */
export interface RowSelection {
  selected: ReadonlySet<string>;
  toggle: (itemId: string) => void;
}

/** Items as table rows; a title opens the item; with `selection`, a box picks a row. */
export function ItemTable({
  rows,
  showClaim,
  testId,
  selection,
}: {
  rows: InboxRow[];
  showClaim?: boolean;
  testId: string;
  selection?: RowSelection;
}) {
  if (!rows.length) return <p data-testid={`${testId}-empty`}>Nothing here.</p>;
  return (
    <table data-testid={testId}>
      <thead>
        <tr>
          {selection && <th>Pick</th>}
          <th>Title</th><th>Kind</th><th>State</th><th>Risk</th><th>Priority</th><th>Due</th>
          {showClaim && <th>Claim</th>}<th>Requester</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(({ item, dueAt, overdue, claim, fresh }) => (
          <tr key={item.id} data-item-id={item.id} className={fresh ? "fresh" : undefined}>
            {selection && (
              <td>
                <input
                  type="checkbox"
                  aria-label={`Pick ${item.title}`}
                  checked={selection.selected.has(item.id)}
                  onChange={() => selection.toggle(item.id)}
                />
              </td>
            )}
            <td>
              <a
                href={`${BASE}/item/${encodeURIComponent(item.id)}`}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(`/item/${encodeURIComponent(item.id)}`);
                }}
              >
                {item.title}
              </a>
              {fresh && <span className="badge">new</span>}
              {item.steps.some((s) => s.stepState === "HELD") && (
                <span className="badge held" title="A step waits for the requester's choice">held</span>
              )}
            </td>
            <td>{words(item.kind)}</td>
            <td>{words(item.state)}</td>
            <td className={`risk-${item.risk.toLowerCase()}`}>{words(item.risk)}</td>
            <td>{item.priority}</td>
            <td className={overdue ? "overdue" : undefined}>{when(dueAt)}</td>
            {showClaim && <td data-testid="claim">{claim ? words(claim) : "—"}</td>}
            <td>{item.requester.displayName}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
