/**
 * The offers as the page shows them: read with what a bundle holds (each item's group and
 * tokens), and told in words: what an offer gives, for how long, and whether it renews.
 */
import type { UserCreditsClient } from "../src/index.js";
import { TypedDocumentString, type Cycle, type OfferKind } from "../src/generated.js";
import { tokensOf } from "./words.js";

export interface BundledItem {
  offerId: string;
  offerGroup: string;
  quantity: number;
  cycle: Cycle | null;
  customCycleSeconds: number | null;
  tokenCount: number;
}

export interface ShownOffer {
  id: string;
  name: string;
  kind: OfferKind;
  offerGroup: string;
  tokenCount: number;
  cycle: Cycle;
  customCycleSeconds: number | null;
  popular: boolean;
  prices: { amount: string; currency: string }[];
  combinedItems: BundledItem[];
}

// The kit's `offers()` leaves out a bundle's items; the page asks for them too.
const OFFERS = new TypedDocumentString<{ offers: ShownOffer[] }, Record<string, never>>(`
  query DemoOffers {
    offers {
      id name kind offerGroup tokenCount cycle customCycleSeconds popular
      prices { amount currency }
      combinedItems { offerId offerGroup quantity cycle customCycleSeconds tokenCount }
    }
  }`);

export async function readOffers(client: UserCreditsClient): Promise<ShownOffer[]> {
  return (await client.request(OFFERS, {})).offers;
}

const PERIODS: Record<Exclude<Cycle, "ONCE" | "CUSTOM">, [string, string]> = {
  DAILY: ["day", "a day"],
  WEEKLY: ["week", "a week"],
  BI_WEEKLY: ["two weeks", "two weeks"],
  MONTHLY: ["month", "a month"],
  TRIMESTER: ["three months", "three months"],
  SEMESTER: ["six months", "six months"],
  YEARLY: ["year", "a year"],
};

/** A cycle as "month" (after "every") and "a month" (after "for"); null for ONCE. */
function period(cycle: Cycle, customSeconds: number | null): [string, string] | null {
  if (cycle === "ONCE") return null;
  if (cycle !== "CUSTOM") return PERIODS[cycle];
  const seconds = customSeconds ?? 0;
  const [size, unit] =
    seconds % 86_400 === 0 ? [seconds / 86_400, "day"] : [Math.round(seconds / 3_600), "hour"];
  const span = `${size} ${unit}${size === 1 ? "" : "s"}`;
  return [span, span];
}

/** How long tokens last: "for a month", or "never expire". */
function validity(cycle: Cycle, customSeconds: number | null): string {
  const span = period(cycle, customSeconds);
  return span === null ? "that never expire" : `valid for ${span[1]}`;
}

export function renews(offer: ShownOffer): boolean {
  return offer.kind === "SUBSCRIPTION" && offer.cycle !== "ONCE";
}

/** What one purchase credits, one line per group: a bundle lists its items. */
export function gives(offer: ShownOffer): string[] {
  const lines = offer.combinedItems.map((item) => {
    // An item without a period of its own lasts the bundle's.
    const [cycle, seconds] = item.cycle
      ? [item.cycle, item.customCycleSeconds]
      : [offer.cycle, offer.customCycleSeconds];
    return `${tokensOf(item.tokenCount, item.offerGroup)} ${validity(cycle, seconds)}`;
  });
  if (offer.tokenCount > 0 || lines.length === 0) {
    const own = validity(offer.cycle, offer.customCycleSeconds);
    lines.unshift(`${tokensOf(offer.tokenCount, offer.offerGroup)} ${own}`);
  }
  return lines;
}

/** How the offer is paid: once, or renewing (and how often) when subscribed to. */
export function terms(offer: ShownOffer): string {
  const span = period(offer.cycle, offer.customCycleSeconds);
  if (renews(offer) && span !== null) {
    return `Subscribe: renews every ${span[0]} until you cancel. Buy: ${span[1]}, no renewal.`;
  }
  return "One payment, no renewal.";
}

/** How often a plan of the offer renews: "every month" ("" for ONCE). */
export function every(offer: ShownOffer): string {
  const span = period(offer.cycle, offer.customCycleSeconds);
  return span === null ? "" : `every ${span[0]}`;
}
