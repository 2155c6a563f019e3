import { useEffect, useId, useRef, useState } from "react";

/** The item's step graph (Mermaid text from `WorkflowItem.diagram`, coloured by step state),
 * drawn by the `mermaid` package, loaded only when a diagram is shown. */
export function Diagram({ text }: { text: string }) {
  const box = useRef<HTMLDivElement>(null);
  const id = "diagram-" + useId().replace(/[^a-zA-Z0-9]/g, "");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    import("mermaid")
      .then(async ({ default: mermaid }) => {
        mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
        const { svg } = await mermaid.render(id, text);
        if (!cancelled && box.current) box.current.innerHTML = svg;
      })
      .catch((e: unknown) => !cancelled && setError(String(e)));
    return () => {
      cancelled = true;
    };
  }, [id, text]);
  return (
    <figure className="diagram">
      <div ref={box} data-testid="diagram" />
      {error && <pre>{text}</pre>}
    </figure>
  );
}
