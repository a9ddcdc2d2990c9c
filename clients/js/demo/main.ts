/**
 * The demo page served at `/` with USERCREDITS_DEMO=true, through the client kit: what the
 * demo user has (balances per group, live, each with a chart of its balance over time; plans,
 * holds and warnings), what they can buy (offers told in words), and what they spent (the
 * ledger). Every action says what it did, or in words why not and what to do; actions that
 * end something ask first.
 */
import {
  UserCreditsClient,
  type Balance,
  type BalancesUpdate,
  type LedgerEntry,
  type Plan,
  type Reservation,
  type StripeConfirmer,
  type Watch,
} from "../src/index.js";
import { gives, every, readOffers, renews, terms, type ShownOffer } from "./catalogue.js";
import { balanceChart, type Point } from "./chart.js";
import { button, byId, h } from "./dom.js";
import { count, day, explain, price, staleOffers, tokensOf, when } from "./words.js";

declare global {
  interface Window {
    Stripe?: (publishableKey: string) => StripeConfirmer;
  }
}

const GRAPHQL = new URL("/graphql", location.href).toString();
const LEDGER_PAGE = 10;
/** The movements a chart is drawn from: the newest of the user's ledger. */
const CHART_ENTRIES = 100;
/** How long a notice stays unless a newer one replaces it; a refusal stays longer. */
const NOTICE_MS = 6_000;
const PROBLEM_MS = 15_000;
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

interface Session {
  token: string;
  stripePublishableKey: string | null;
  /** When to ask for a new token: a minute before this one expires. */
  renewAt: number;
}

/** Reads of one kind (offers, the ledger, ...) that may overlap when changes come fast:
 * only the answer of the newest read is shown, so an older one cannot overwrite it. */
class Latest {
  private asked = 0;

  async show<T>(read: () => Promise<T | null>, shown: (value: T) => void): Promise<void> {
    const mine = ++this.asked;
    const value = await read();
    if (value !== null && mine === this.asked) shown(value);
  }
}

class Demo {
  private client: UserCreditsClient | null = null;
  private stripe: StripeConfirmer | null = null;
  private watch: Watch | null = null;
  private reservations: Reservation[] = [];
  private history = new Map<string, Point[]>();
  private page = 0;
  private cursors: (string | null)[] = [null];
  private noticeTimer: number | undefined;
  private readonly reads = {
    offers: new Latest(),
    ledger: new Latest(),
    history: new Latest(),
    plans: new Latest(),
    warnings: new Latest(),
  };

  async start(): Promise<void> {
    byId<HTMLSelectElement>("user").addEventListener("change", () => void this.signIn());
    byId<HTMLFormElement>("spend").addEventListener("submit", (event) => {
      event.preventDefault();
      const submitter = event.submitter as HTMLButtonElement | null;
      void this.spend(submitter?.value ?? "consume", submitter);
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
      this.history = new Map();
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
      this.problem(error, "Could not sign in.");
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

  /** A change of balance, here or anywhere: it may also unlock or replace offers (a
   * purchase in another tab), so the offers are read again with the ledger. */
  private async changed(update: BalancesUpdate): Promise<void> {
    this.showBalances(update.balances);
    if (update.event) {
      const { delta, offerGroup, reason } = update.event;
      byId("last-change").textContent =
        `${offerGroup}: ${delta > 0 ? "+" : ""}${delta} (${reason.toLowerCase()})`;
    }
    await Promise.all([
      this.ledgerPage(0),
      this.showHistory(),
      this.showWarnings(),
      update.event ? this.showOffers() : null,
    ]);
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
        ? [h("p", { class: "empty" }, "No tokens yet: buy an offer below.")]
        : balances.map((balance) => this.balanceCard(balance))),
    );
  }

  private balanceCard(balance: Balance): HTMLElement {
    const lots = h(
      "table",
      { class: "lots" },
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
      ? `${count(balance.nextExpiry.tokens)} expire ${when(balance.nextExpiry.at)}`
      : "nothing expires";
    return h(
      "article",
      { class: "balance", "data-group": balance.offerGroup },
      h("h3", {}, balance.offerGroup),
      h(
        "p",
        { class: "tokens" },
        h("span", { class: "amount" }, String(balance.tokens)),
        " tokens",
      ),
      h("p", { class: "muted" }, `${count(balance.reserved)} held; ${next}`),
      h("div", { class: "chart-box" }, this.chart(balance.offerGroup)),
      lots,
    );
  }

  private chart(group: string): SVGSVGElement {
    return balanceChart(group, this.history.get(group) ?? [], Date.now());
  }

  /** The charts' movements, read again at each change so they follow it live. */
  private async showHistory(): Promise<void> {
    const client = this.client!;
    await this.reads.history.show(
      () => this.guard(() => client.ledger({ first: CHART_ENTRIES })),
      (page) => {
        const history = new Map<string, Point[]>();
        for (const { node } of [...page.edges].reverse()) {
          const points = history.get(node.offerGroup) ?? [];
          points.push({ at: Date.parse(node.createdAt), balance: node.balanceAfter });
          history.set(node.offerGroup, points);
        }
        this.history = history;
        for (const box of document.querySelectorAll<HTMLElement>(".balance")) {
          box.querySelector(".chart-box")?.replaceChildren(this.chart(box.dataset.group!));
        }
      },
    );
  }

  private async showOffers(): Promise<void> {
    const client = this.client!;
    await this.reads.offers.show(
      () => this.guard(() => readOffers(client)),
      (offers) => {
        byId("offers").replaceChildren(
          ...(offers.length === 0
            ? [h("li", { class: "empty" }, "Nothing on sale right now.")]
            : offers.map((offer) => this.offerCard(offer))),
        );
      },
    );
  }

  private offerCard(offer: ShownOffer): HTMLElement {
    const cost = offer.prices[0];
    const actions = [
      button("Buy", "primary", `Buy ${offer.name}`, (b) => void this.buy(offer, b)),
    ];
    if (renews(offer)) {
      actions.push(
        button(
          "Subscribe",
          "primary",
          `Subscribe to ${offer.name}`,
          (b) => void this.subscribe(offer, b),
        ),
      );
    }
    return h(
      "li",
      { class: "offer", "data-offer": offer.id },
      h(
        "div",
        { class: "offer-head" },
        h("h3", { class: "name" }, offer.name),
        ...(offer.popular ? [h("span", { class: "tag" }, "Popular")] : []),
        h("span", { class: "price" }, cost ? price(cost.amount, cost.currency) : "free"),
      ),
      h("ul", { class: "gives" }, ...gives(offer).map((line) => h("li", {}, line))),
      h("p", { class: "terms" }, terms(offer)),
      h("div", { class: "actions" }, ...actions),
    );
  }

  private async buy(offer: ShownOffer, button: HTMLButtonElement): Promise<void> {
    const order = await this.busy(button, () => this.client!.buy(offer.id, this.payment()));
    if (order?.status === "PAID") this.notice(`Bought ${offer.name}: ${gives(offer).join("; ")}.`);
    else if (order) {
      const status = order.status.toLowerCase();
      this.notice(`${offer.name}: payment ${status}; the tokens show once it is paid.`);
    }
    await this.showOffers(); // a purchase may unlock or replace offers
  }

  private payment() {
    return this.stripe ? { stripe: this.stripe, paymentMethod: TEST_CARD } : {};
  }

  private async subscribe(offer: ShownOffer, button: HTMLButtonElement): Promise<void> {
    const plan = await this.busy(button, () => this.client!.subscribe(offer.id, this.payment()));
    if (plan) {
      const next = day(plan.currentPeriodEnd);
      const status = plan.status.toLowerCase();
      this.notice(
        plan.status === "ACTIVE"
          ? `Subscribed to ${offer.name}: it renews ${every(offer)}, next on ${next}.`
          : `Subscribed to ${offer.name}: the plan is ${status} until its payment is confirmed.`,
      );
    }
    await Promise.all([this.showPlans(), this.showOffers()]);
  }

  private async showPlans(): Promise<void> {
    const client = this.client!;
    await this.reads.plans.show(
      () => this.guard(() => client.plans()),
      (plans) =>
        byId("plans").replaceChildren(
          ...(plans.length === 0
            ? [h("li", { class: "empty" }, "None: subscribe to an offer below.")]
            : plans.map((plan) => this.planItem(plan))),
        ),
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
    const client = this.client!;
    const kept = "the tokens already credited stay";
    // A change that ends something asks its question first and is styled apart.
    const change = (
      label: string,
      question: string | null,
      call: () => Promise<Plan>,
      said: (plan: Plan) => string,
    ) => {
      const kind = question ? "danger" : "secondary";
      const made = button(label, kind, `${label}: ${what}`, (b) => {
        void this.changePlan(b, call, said);
      });
      if (question) made.dataset.confirm = question;
      return made;
    };
    const buttons: HTMLButtonElement[] = [];
    if (live && plan.cancelAtPeriodEnd) {
      buttons.push(
        change(
          "Resume",
          null,
          () => client.resumePlan(plan.id),
          (p) => `The ${what} renews again on ${day(p.currentPeriodEnd)}.`,
        ),
      );
    }
    if (live && !plan.cancelAtPeriodEnd) {
      const last = day(plan.currentPeriodEnd);
      buttons.push(
        change(
          "Cancel",
          `Cancel the ${what}? It stops renewing and ends on ${last}; ${kept}.`,
          () => client.cancelPlan(plan.id),
          (p) => `The ${what} will not renew: it ends on ${day(p.currentPeriodEnd)}.`,
        ),
      );
    }
    if (live) {
      buttons.push(
        change(
          "End now",
          `End the ${what} now? It ends at once and does not renew; ${kept}.`,
          () => client.cancelPlan(plan.id, false),
          () => `The ${what} has ended; its tokens stay.`,
        ),
      );
    }
    return h(
      "li",
      { class: "plan", "data-plan": plan.id, "data-status": plan.status },
      h("span", {}, `${what}: ${plan.status.toLowerCase().replace("_", " ")}${next}`),
      h("span", { class: "actions" }, ...buttons),
    );
  }

  /** Changes a plan, once the person agrees when the button asks (`data-confirm`). */
  private async changePlan(
    button: HTMLButtonElement,
    change: () => Promise<Plan>,
    said: (plan: Plan) => string,
  ): Promise<void> {
    const question = button.dataset.confirm;
    if (question && !window.confirm(question)) return;
    const plan = await this.busy(button, change);
    if (plan) this.notice(said(plan));
    await Promise.all([this.showPlans(), this.showOffers()]);
  }

  private async spend(action: string, submitter: HTMLButtonElement | null): Promise<void> {
    const group = byId<HTMLSelectElement>("group").value;
    const tokens = Number(byId<HTMLInputElement>("tokens").value);
    if (!group) {
      this.say("problem", "You have no tokens to use yet. Buy an offer below first.");
      return;
    }
    const client = this.client!;
    const run = <T>(call: () => Promise<T>) =>
      submitter ? this.busy(submitter, call) : this.guard(call);
    if (action === "reserve") {
      const held = await run(() => client.reserve({ offerGroup: group, tokens }));
      if (held) {
        this.reservations.push(held);
        this.notice(`Held ${tokensOf(held.tokens, group)} until ${when(held.expiresAt)}.`);
      }
      await this.showReservations();
    } else {
      const entry = await run(() => client.consume({ offerGroup: group, tokens }));
      if (entry) {
        const left = count(entry.balanceAfter);
        this.notice(`Spent ${tokensOf(-entry.tokens, group)}; ${left} left.`);
      }
    }
  }

  private async settle(reservation: Reservation, commit: boolean, button: HTMLButtonElement) {
    const client = this.client!;
    const what = tokensOf(reservation.tokens, reservation.offerGroup);
    const done = await this.busy<unknown>(button, () =>
      commit ? client.commit(reservation.id) : client.release(reservation.id),
    );
    if (done) {
      this.reservations = this.reservations.filter((r) => r.id !== reservation.id);
      this.notice(
        commit
          ? `Spent the ${what} held.`
          : `Released the ${what} held: they are back in the balance.`,
      );
    }
    await this.showReservations();
  }

  private async showReservations(): Promise<void> {
    byId("reservations").replaceChildren(
      ...(this.reservations.length === 0
        ? [h("li", { class: "empty" }, "None: hold tokens with Reserve.")]
        : this.reservations.map((reservation) => {
            const what = `${reservation.tokens} ${reservation.offerGroup} tokens`;
            return h(
              "li",
              { class: "hold" },
              h("span", {}, `${what} held until ${when(reservation.expiresAt)}`),
              h(
                "span",
                { class: "actions" },
                button("Commit", "primary", `Commit ${what}`, (b) => {
                  void this.settle(reservation, true, b);
                }),
                button("Release", "secondary", `Release ${what}`, (b) => {
                  void this.settle(reservation, false, b);
                }),
              ),
            );
          })),
    );
  }

  /** Moves through the ledger: +1 older, -1 newer, 0 the same page again. */
  private async ledgerPage(step: number): Promise<void> {
    const target = Math.max(0, this.page + step);
    const after = this.cursors[target] ?? null;
    const client = this.client!;
    await this.reads.ledger.show(
      () => this.guard(() => client.ledger({ first: LEDGER_PAGE, after })),
      (page) => {
        this.page = target;
        this.cursors[target + 1] = page.pageInfo.endCursor;
        byId("ledger").replaceChildren(
          ...(page.edges.length === 0
            ? [h("tr", { class: "empty" }, h("td", { colspan: "5" }, "Nothing bought yet."))]
            : page.edges.map(({ node }) => this.ledgerRow(node))),
        );
        byId<HTMLButtonElement>("ledger-older").disabled = !page.pageInfo.hasNextPage;
        byId<HTMLButtonElement>("ledger-newer").disabled = target === 0;
        byId("ledger-page").textContent = `page ${target + 1}`;
      },
    );
  }

  private ledgerRow(entry: LedgerEntry): HTMLElement {
    // Each cell names its column, which the phone layout shows in place of the header.
    const cell = (label: string, text: string, kind = "") =>
      h("td", { "data-label": label, class: kind }, text);
    return h(
      "tr",
      {},
      cell("When", when(entry.createdAt)),
      cell("Group", entry.offerGroup),
      entry.tokens > 0
        ? cell("Tokens", `+${entry.tokens}`, "credit")
        : cell("Tokens", String(entry.tokens), "debit"),
      cell("Reason", entry.reason.toLowerCase()),
      cell("Balance", String(entry.balanceAfter)),
    );
  }

  private async showWarnings(): Promise<void> {
    const client = this.client!;
    await this.reads.warnings.show(
      () => this.guard(() => client.warnings(604_800, 100)),
      (warnings) =>
        byId("warnings").replaceChildren(
          ...(warnings.length === 0
            ? [h("li", { class: "empty" }, "None.")]
            : warnings.map((w) =>
                h(
                  "li",
                  {},
                  `${w.offerGroup}: ${w.kind.toLowerCase().replace(/_/g, " ")}, ` +
                    `${count(w.tokens)} tokens` +
                    (w.expires ? `, ${when(w.expires)}` : ""),
                ),
              )),
        ),
    );
  }

  /** Runs an action of a button: the button waits while it runs. */
  private async busy<T>(button: HTMLButtonElement, call: () => Promise<T>): Promise<T | null> {
    button.disabled = true;
    try {
      return await this.guard(call);
    } finally {
      button.disabled = false;
    }
  }

  /** Runs a call and shows a refusal in words instead of throwing; a refusal that means
   * the offers shown are out of date reads them again. */
  private async guard<T>(call: () => Promise<T>): Promise<T | null> {
    try {
      return await call();
    } catch (error) {
      this.problem(error);
      if (staleOffers(error) && this.client) void this.showOffers();
      return null;
    }
  }

  private problem(error: unknown, before = ""): void {
    const { sentence, detail } = explain(error);
    this.say("problem", before ? `${before} ${sentence}` : sentence, detail);
  }

  private notice(text: string): void {
    this.say("notice", text);
  }

  /** Shows one message, in place of any older one, until a newer one or a while passes. */
  private say(kind: "notice" | "problem", text: string, detail = ""): void {
    const [shown, hidden] = kind === "notice" ? ["notice", "problem"] : ["problem", "notice"];
    byId(hidden).replaceChildren();
    byId(hidden).hidden = true;
    const box = byId(shown);
    box.replaceChildren(
      h("span", { class: "sentence" }, text),
      ...(detail ? [" ", h("span", { class: "detail" }, `Details: ${detail}`)] : []),
    );
    box.hidden = false;
    window.clearTimeout(this.noticeTimer);
    this.noticeTimer = window.setTimeout(
      () => {
        box.replaceChildren();
        box.hidden = true;
      },
      kind === "notice" ? NOTICE_MS : PROBLEM_MS,
    );
  }
}

void new Demo().start();
