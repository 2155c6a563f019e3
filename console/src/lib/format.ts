export function when(value: string | null | undefined): string {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}

export function words(value: string): string {
  return value.toLowerCase().replace(/_/g, " ");
}

/** A fresh idempotency key for one user intent (a click), so a retried request is not doubled. */
export function intentKey(): string {
  return `console-${crypto.randomUUID()}`;
}
