/**
 * What the page says to a person: refusals of the service as a sentence with the action to
 * take (the error code and the service's own message come after, as details), numbers and
 * dates in one style.
 */
import { UserCreditsError } from "../src/index.js";

/** One sentence per contract error code: what happened, then what to do. */
const SENTENCES: Record<string, string> = {
  INSUFFICIENT_TOKENS: "Not enough tokens for that. Buy more below, or use fewer.",
  OFFER_NOT_AVAILABLE:
    "That offer is no longer on sale to you. The offers are up to date now: pick one of them.",
  QUANTITY_LIMIT: "That is more than one order may hold. Buy fewer at a time.",
  PAYMENT_FAILED: "The payment did not go through. Try again, or pay another way.",
  EXPIRED: "That hold has run out and its tokens are back in the balance. Hold them again.",
  NOT_FOUND: "That is no longer there. The page shows what is there now.",
  CONFLICT: "Something else changed this at the same moment. Try again.",
  BAD_USER_INPUT: "That was not accepted. Check the number of tokens: a whole number above 0.",
  UNAUTHENTICATED: "Your demo session has ended. Reload the page to sign in again.",
  FORBIDDEN: "This demo user may not do that.",
  INTERNAL: "The service had a problem. Try again in a moment.",
};

const UNREACHABLE = "The service cannot be reached. Check that it is running, then try again.";

export interface Explained {
  sentence: string;
  /** The service's message and code, shown after the sentence for whoever needs them. */
  detail: string;
}

export function explain(error: unknown): Explained {
  if (error instanceof UserCreditsError) {
    const sentence = SENTENCES[error.code] ?? SENTENCES.INTERNAL!;
    return { sentence, detail: `${error.message} (${error.code})` };
  }
  return { sentence: UNREACHABLE, detail: String(error) };
}

/** Whether a refusal means the offers shown are out of date. */
export function staleOffers(error: unknown): boolean {
  return (
    error instanceof UserCreditsError &&
    (error.code === "OFFER_NOT_AVAILABLE" || error.code === "NOT_FOUND")
  );
}

const NUMBERS = new Intl.NumberFormat("en");

export function count(tokens: number): string {
  return NUMBERS.format(tokens);
}

/** "500 chat tokens". */
export function tokensOf(tokens: number, group: string): string {
  return `${count(tokens)} ${group} ${Math.abs(tokens) === 1 ? "token" : "tokens"}`;
}

export function when(iso: string | null): string {
  return iso === null ? "never" : new Date(iso).toLocaleString();
}

export function day(iso: string | null): string {
  return iso === null ? "never" : new Date(iso).toLocaleDateString();
}

export function price(amount: string, currency: string): string {
  return new Intl.NumberFormat("en", { style: "currency", currency }).format(Number(amount));
}
