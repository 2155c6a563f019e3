export interface FacetGroup {
  name: string;
  counts: ReadonlyArray<{ value: string; count: number }>;
  selected: ReadonlyArray<string>;
  toggle: (value: string) => void;
}

/** Filter badges: each value with its count; a click adds or removes it from the filter. */
export function Facets({ groups, exact }: { groups: FacetGroup[]; exact: boolean }) {
  return (
    <div className="facets">
      {groups.map((group) => (
        <fieldset key={group.name}>
          <legend>{group.name}</legend>
          {group.counts.map(({ value, count }) => (
            <label key={value} className={group.selected.includes(value) ? "on" : ""}>
              <input
                type="checkbox"
                checked={group.selected.includes(value)}
                onChange={() => group.toggle(value)}
              />
              {value.toLowerCase().replace(/_/g, " ")} <span className="count">{count}{exact ? "" : "+"}</span>
            </label>
          ))}
        </fieldset>
      ))}
    </div>
  );
}
