/**
 * The demo page served at `/` with USERCREDITS_DEMO=true: a demo user buys offers in the
 * sandbox (or subscribes to a renewing plan), spends and reserves tokens, and watches
 * balances, lots, the ledger and warnings change live, all through the client kit.
 */
import {
  UserCreditsClient,
  UserCreditsError,
  type Balance,
  type BalancesUpdate,
  type Plan,
  type Reservation,
  type StripeConfirmer,
  type Watch,
} from "../src/index.js";

declare global {
  interface Window {
    Stripe?: (publishableKey: string) => StripeConfirmer;
  }
}

const GRAPHQL = new URL("/graphql", location.href).toString();
const LEDGER_PAGE = 10;
/** Stripe's test card: in test mode the demo pays with it, as the Stripe docs do. */
const TEST_CARD = "pm_card_visa";

/** Stripe.js, from Stripe as its terms require, once the service names a key. */
async function loadStripe(publishableKey: string): Promise<StripeConfirmer> {
  if (!window.Stripe) {
    await new Promise((resolve, reject) => {
      const script = h("script", { src: "https://js.stripe.com/v3/" });
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => reject(new Error("Stripe.js did not load")));
      document.head.append(script);
    });
  }
  return window.Stripe!(publishableKey);
}

type Child = Node | string;

/** An element with attributes and children; text is always set as text, never as HTML. */
function h(tag: string, attributes: Record<string, string> = {}, ...children: Child[]) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function byId<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

function when(iso: string | null): string {
  return iso === null ? "never" : new Date(iso).toLocaleString();
}

interface Session {
  token: string;
  stripePublishableKey: string | null;
  /** When to ask for a new token: a minute before this one expires. */
  renewAt: number;
}

class Demo {
  private client: UserCreditsClient | null = null;
  private stripe: StripeConfirmer | null = null;
  private watch: Watch | null = null;
  private reservations: Reservation[] = [];
  private page = 0;
  private cursors: (string | null)[] = [null];

  async start(): Promise<void> {
    byId<HTMLSelectElement>("user").addEventListener("change", () => void this.signIn());
    byId<HTMLFormElement>("spend").addEventListener("submit", (event) => {
      event.preventDefault();
      const action = (event.submitter as HTMLButtonElement | null)?.value ?? "consume";
      void this.spend(action);
    });
    byId("ledger-older").addEventListener("click", () => void this.ledgerPage(+1));
    byId("ledger-newer").addEventListener("click", () => void this.ledgerPage(-1));
    await this.signIn();
  }

  private async signIn(): Promise<void> {
    const select = byId<HTMLSelectElement>("user");
    select.disabled = true;
    try {
      await this.watch?.stop();
      this.watch = null;
      const user = select.value;
      const session = await this.session(user);
      // A fresh demo token before the one in use expires (the socket asks at each connection).
      let current = session;
      const token = async () => {
        if (Date.now() > current.renewAt) current = await this.session(user);
        return current.token;
      };
      this.client = new UserCreditsClient({ url: GRAPHQL, token });
      if (session.stripePublishableKey) {
        this.stripe = await this.guard(() => loadStripe(session.stripePublishableKey!));
        byId("payments").textContent = "Stripe test mode: paid with Stripe's test Visa card.";
      }
      this.reservations = [];
      this.page = 0;
      this.cursors = [null];
      this.status("connecting");
      const client = this.client;
      this.watch = client.watchBalances(
        {
          details: true,
          onStatus: (status) => this.status(status),
          onError: (error) => console.warn("balances:", error),
        },
        // Updates of a watch left behind by a switch of user are dropped.
        (update) => void (this.client === client && this.changed(update)),
      );
      await Promise.all([this.showOffers(), this.showReservations(), this.showPlans()]);
    } catch (error) {
      byId("problem").textContent = `Could not sign in: ${String(error)}`;
    } finally {
      select.disabled = false;
    }
  }

  private async session(user: string): Promise<Session> {
    const answer = await fetch("/demo/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user }),
    });
    if (!answer.ok) throw new Error(`${answer.status} ${await answer.text()}`);
    const session = (await answer.json()) as Omit<Session, "renewAt"> & { expiresIn: number };
    return { ...session, renewAt: Date.now() + (session.expiresIn - 60) * 1000 };
  }

  private status(status: string): void {
    const badge = byId("connection");
    badge.textContent = status;
    badge.dataset.status = status;
  }

  private async changed(update: BalancesUpdate): Promise<void> {
    this.showBalances(update.balances);
    if (update.event) {
      const { delta, offerGroup, reason } = update.event;
      byId("last-change").textContent =
        `${offerGroup}: ${delta > 0 ? "+" : ""}${delta} (${reason.toLowerCase()})`;
    }
    await Promise.all([this.ledgerPage(0), this.showWarnings()]);
  }

  private showBalances(balances: Balance[]): void {
    const groups = byId<HTMLSelectElement>("group");
    const chosen = groups.value;
    groups.replaceChildren(
      ...balances.map((b) => h("option", { value: b.offerGroup }, b.offerGroup)),
    );
    if (balances.some((b) => b.offerGroup === chosen)) groups.value = chosen;
    byId("balances").replaceChildren(
      ...(balances.length === 0
        ? [h("p", {}, "No tokens yet: buy an offer below.")]
        : balances.map((balance) => this.balanceCard(balance))),
    );
  }

  private balanceCard(balance: Balance): HTMLElement {
    const lots = h(
      "table",
      {},
      h(
        "thead",
        {},
        h("tr", {}, h("th", {}, "Lot"), h("th", {}, "Left"), h("th", {}, "Expires")),
      ),
      h(
        "tbody",
        {},
        ...balance.lots.map((lot) =>
          h(
            "tr",
            {},
            h("td", {}, lot.source.toLowerCase()),
            h("td", {}, `${lot.remaining} / ${lot.tokens}`),
            h("td", {}, when(lot.expires)),
          ),
        ),
      ),
    );
    const next = balance.nextExpiry
      ? `${balance.nextExpiry.tokens} expire ${when(balance.nextExpiry.at)}`
      : "nothing expires";
    return h(
      "article",
      { class: "balance", "data-group": balance.offerGroup },
      h("h3", {}, balance.offerGroup),
      h("p", { class: "tokens" }, h("span", { class: "amount" }, String(balance.tokens)), " tokens"),
      h("p", {}, `${balance.reserved} reserved; ${next}`),
      lots,
    );
  }

  private async showOffers(): Promise<void> {
    const offers = await this.guard(() => this.client!.offers());
    if (!offers) return;
    byId("offers").replaceChildren(
      ...offers.map((offer) => {
        const price = offer.prices[0];
        const buy = h(
          "button",
          { type: "button", "aria-label": `Buy ${offer.name}` },
          "Buy",
        ) as HTMLButtonElement;
        buy.addEventListener("click", () => void this.buy(offer.id, buy));
        const actions: HTMLElement[] = [buy];
        if (offer.kind === "SUBSCRIPTION" && offer.cycle !== "ONCE") {
          const subscribe = h(
            "button",
            { type: "button", "aria-label": `Subscribe to ${offer.name}` },
            "Subscribe",
          ) as HTMLButtonElement;
          subscribe.addEventListener("click", () => void this.subscribe(offer.id, subscribe));
          actions.push(subscribe);
        }
        return h(
          "li",
          { class: "offer", "data-offer": offer.id },
          h("span", { class: "name" }, offer.name),
          h(
            "span",
            { class: "detail" },
            `${offer.tokenCount} ${offer.offerGroup} tokens, ${offer.cycle.toLowerCase()}` +
              (price ? `, ${price.amount} ${price.currency}` : ""),
          ),
          ...actions,
        );
      }),
    );
  }

  private async buy(offerId: string, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    const order = await this.guard(() => this.client!.buy(offerId, this.payment()));
    button.disabled = false;
    if (order) {
      this.say(`Order ${order.status.toLowerCase()}: ${order.tokenCount} tokens`);
      await this.showOffers(); // a purchase may unlock other offers
    }
  }

  private payment() {
    return this.stripe ? { stripe: this.stripe, paymentMethod: TEST_CARD } : {};
  }

  private async subscribe(offerId: string, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    const plan = await this.guard(() => this.client!.subscribe(offerId, this.payment()));
    button.disabled = false;
    if (plan) this.say(`Plan ${plan.status.toLowerCase()}: ${plan.offerGroup} renews each period`);
    await this.showPlans();
  }

  private async showPlans(): Promise<void> {
    const plans = await this.guard(() => this.client!.plans());
    if (!plans) return;
    byId("plans").replaceChildren(
      ...(plans.length === 0
        ? [h("li", {}, "None: subscribe to an offer above.")]
        : plans.map((plan) => this.planItem(plan))),
    );
  }

  private planItem(plan: Plan): HTMLElement {
    const what = `${plan.offerGroup} plan`;
    const live = plan.status !== "CANCELED";
    const next = !live
      ? ""
      : plan.cancelAtPeriodEnd
        ? `, ends ${when(plan.currentPeriodEnd)}`
        : `, renews ${when(plan.currentPeriodEnd)}`;
    const buttons: HTMLElement[] = [];
    const add = (label: string, change: () => Promise<Plan>) => {
      const button = h("button", { type: "button", "aria-label": `${label}: ${what}` }, label);
      button.addEventListener("click", () => void this.changePlan(change));
      buttons.push(button);
    };
    const client = this.client!;
    if (live && plan.cancelAtPeriodEnd) add("Resume", () => client.resumePlan(plan.id));
    if (live && !plan.cancelAtPeriodEnd) add("Cancel", () => client.cancelPlan(plan.id));
    if (live) add("End now", () => client.cancelPlan(plan.id, false));
    return h(
      "li",
      { class: "plan", "data-plan": plan.id, "data-status": plan.status },
      `${what}: ${plan.status.toLowerCase().replace("_", " ")}${next} `,
      ...buttons,
    );
  }

  private async changePlan(change: () => Promise<Plan>): Promise<void> {
    const plan = await this.guard(change);
    if (plan) this.say(`Plan ${plan.status.toLowerCase()}`);
    await this.showPlans();
  }

  private async spend(action: string): Promise<void> {
    const group = byId<HTMLSelectElement>("group").value;
    const tokens = Number(byId<HTMLInputElement>("tokens").value);
    const client = this.client!;
    if (action === "reserve") {
      const held = await this.guard(() => client.reserve({ offerGroup: group, tokens }));
      if (held) this.reservations.push(held);
      await this.showReservations();
    } else {
      const entry = await this.guard(() => client.consume({ offerGroup: group, tokens }));
      if (entry) this.say(`Spent ${-entry.tokens} ${group} tokens`);
    }
  }

  private async settle(reservation: Reservation, commit: boolean): Promise<void> {
    const client = this.client!;
    const done = await this.guard<unknown>(() =>
      commit ? client.commit(reservation.id) : client.release(reservation.id),
    );
    if (done) this.reservations = this.reservations.filter((r) => r.id !== reservation.id);
    await this.showReservations();
  }

  private async showReservations(): Promise<void> {
    byId("reservations").replaceChildren(
      ...this.reservations.map((reservation) => {
        const what = `${reservation.tokens} ${reservation.offerGroup} tokens`;
        const commit = h("button", { type: "button", "aria-label": `Commit ${what}` }, "Commit");
        const release = h(
          "button",
          { type: "button", "aria-label": `Release ${what}` },
          "Release",
        );
        commit.addEventListener("click", () => void this.settle(reservation, true));
        release.addEventListener("click", () => void this.settle(reservation, false));
        return h(
          "li",
          {},
          `${reservation.tokens} ${reservation.offerGroup} tokens held until ${when(reservation.expiresAt)} `,
          commit,
          release,
        );
      }),
    );
  }

  /** Moves through the ledger: +1 older, -1 newer, 0 the same page again. */
  private async ledgerPage(step: number): Promise<void> {
    const target = Math.max(0, this.page + step);
    const after = this.cursors[target] ?? null;
    const page = await this.guard(() => this.client!.ledger({ first: LEDGER_PAGE, after }));
    if (!page) return;
    this.page = target;
    this.cursors[target + 1] = page.pageInfo.endCursor;
    byId("ledger").replaceChildren(
      ...page.edges.map(({ node }) =>
        h(
          "tr",
          {},
          h("td", {}, when(node.createdAt)),
          h("td", {}, node.offerGroup),
          h("td", {}, `${node.tokens > 0 ? "+" : ""}${node.tokens}`),
          h("td", {}, node.reason.toLowerCase()),
          h("td", {}, String(node.balanceAfter)),
        ),
      ),
    );
    byId<HTMLButtonElement>("ledger-older").disabled = !page.pageInfo.hasNextPage;
    byId<HTMLButtonElement>("ledger-newer").disabled = target === 0;
    byId("ledger-page").textContent = `page ${target + 1}`;
  }

  private async showWarnings(): Promise<void> {
    const warnings = await this.guard(() => this.client!.warnings(604_800, 100));
    if (!warnings) return;
    byId("warnings").replaceChildren(
      ...(warnings.length === 0
        ? [h("li", {}, "None.")]
        : warnings.map((w) =>
            h(
              "li",
              {},
              `${w.offerGroup}: ${w.kind.toLowerCase().replace(/_/g, " ")}, ${w.tokens} tokens` +
                (w.expires ? `, ${when(w.expires)}` : ""),
            ),
          )),
    );
  }

  /** Runs a call and shows a refusal (INSUFFICIENT_TOKENS, ...) instead of throwing. */
  private async guard<T>(call: () => Promise<T>): Promise<T | null> {
    try {
      return await call();
    } catch (error) {
      const text =
        error instanceof UserCreditsError ? `${error.code}: ${error.message}` : String(error);
      byId("problem").textContent = text;
      return null;
    }
  }

  private say(text: string): void {
    byId("problem").textContent = "";
    byId("notice").textContent = text;
  }
}

void new Demo().start();
