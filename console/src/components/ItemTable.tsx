import type { InboxRow } from "../lib/inbox";
import { when, words } from "../lib/format";
import { BASE, navigate } from "../lib/router";

/** Items as table rows; a title opens the item. */
export function ItemTable({ rows, showClaim, testId }: { rows: InboxRow[]; showClaim?: boolean; testId: string }) {
  if (!rows.length) return <p data-testid={`${testId}-empty`}>Nothing here.</p>;
  return (
    <table data-testid={testId}>
      <thead>
        <tr>
          <th>Title</th><th>Kind</th><th>State</th><th>Risk</th><th>Priority</th><th>Due</th>
          {showClaim && <th>Claim</th>}<th>Requester</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(({ item, dueAt, overdue, claim, fresh }) => (
          <tr key={item.id} data-item-id={item.id} className={fresh ? "fresh" : undefined}>
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
            </td>
            <td>{words(item.kind)}</td>
            <td>{words(item.state)}</td>
            <td className={`risk-${item.risk.toLowerCase()}`}>{words(item.risk)}</td>
            <td>{item.priority}</td>
            <td className={overdue ? "overdue" : undefined}>{when(dueAt)}</td>
            {showClaim && <td>{claim ? words(claim) : "—"}</td>}
            <td>{item.requester.displayName}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
