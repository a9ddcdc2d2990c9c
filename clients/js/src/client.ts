/**
 * The client kit: one object per signed-in user that reads, spends and buys tokens over
 * HTTP and follows balances over graphql-transport-ws.
 *
 * Every mutation that moves tokens carries an idempotency key made here, and a network
 * failure is retried with the same key, so a retry can never debit twice.
 */
import { createClient, type Client as SocketClient } from "graphql-ws";

import {
  BalanceChangedDocument,
  BalancesDocument,
  CancelPlanDocument,
  CommitReservationDocument,
  CompleteSandboxPaymentDocument,
  ConsumeTokensDocument,
  CreateOrderDocument,
  CreditWarningsDocument,
  LedgerDocument,
  OffersDocument,
  OrderDocument,
  PlansDocument,
  ReleaseReservationDocument,
  ReserveTokensDocument,
  ResumePlanDocument,
  SubscribeDocument,
  type BalanceChangedSubscription,
  type BalancesQuery,
  type CreditWarningsQuery,
  type LedgerQuery,
  type OffersQuery,
  type OrderFieldsFragment,
  type PlanFieldsFragment,
  type EntryFieldsFragment,
  type ReservationFieldsFragment,
  type TypedDocumentString,
} from "./generated.js";

export type Balance = BalancesQuery["wallet"]["balances"][number];
export type BalanceEvent = BalanceChangedSubscription["balanceChanged"];
export type Offer = OffersQuery["offers"][number];
export type Order = OrderFieldsFragment;
export type Plan = PlanFieldsFragment;
export type LedgerEntry = EntryFieldsFragment;
export type Reservation = ReservationFieldsFragment;
export type LedgerPage = LedgerQuery["ledger"];
export type CreditWarning = CreditWarningsQuery["creditWarnings"][number];

/** A token, or a function giving the current one: called before every request and every
 * (re)connection, so a front end can refresh an expiring token there. */
export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** The service's GraphQL address, such as `https://credits.example.com/graphql`, or in
   * a page, relative to it (`/graphql`). */
  url: string;
  token: TokenSource;
  /** Attempts of a request that fails on the network or with 429/502/503/504 (default 4). */
  attempts?: number;
  /** The first wait between attempts and between reconnections, doubled each time. */
  retryBaseMs?: number;
  /** The longest wait between reconnections (default 10 s). */
  retryMaxMs?: number;
  /** How long one attempt of a request may take before it is abandoned and, if attempts
   * are left, sent again with the same idempotency key (default 30 s). */
  timeoutMs?: number;
  /** Another `fetch` (tests, older runtimes). */
  fetch?: typeof fetch;
  /** The WebSocket class `watchBalances` uses where the runtime has no global one: on
   * Node 20, `npm i ws` and pass `WebSocket` from "ws". */
  webSocketImpl?: unknown;
}

/** A refusal by the service, with the contract's error code (INSUFFICIENT_TOKENS, ...). */
export class UserCreditsError extends Error {
  readonly code: string;

  constructor(message: string, code: string) {
    super(message);
    this.name = "UserCreditsError";
    this.code = code;
  }
}

/** The part of a Stripe.js instance `buy` needs: `Stripe(publishableKey)` is one. */
export interface StripeConfirmer {
  confirmCardPayment(
    clientSecret: string,
    data?: { payment_method?: unknown },
  ): Promise<{ error?: { message?: string } }>;
}

export interface WatchOptions {
  /** Only this group's balance; all groups when absent. */
  offerGroup?: string;
  /** Also follow reserved tokens, lots and expiries: an event carries only the new token
   * count, so each change is followed by a read of the balances (one query per change). */
  details?: boolean;
  /** Told when the connection drops (it is retried) or the subscription is refused; a
   * close comes as its CloseEvent, whose `code` and `reason` say why. */
  onError?: (error: unknown) => void;
  /** Told "live" at each (re)connection and "reconnecting" when the connection drops or
   * the token expired (4401: it reconnects with the token the callback gives then); told
   * "refused" when the service refuses the connection for good (4403: the credentials
   * will not do; 4400: a malformed connection; 4401 with a fixed token, which cannot be
   * refreshed): the watch stops trying. */
  onStatus?: (status: WatchStatus) => void;
}

export type WatchStatus = "live" | "reconnecting" | "refused";

/** What `watchBalances` hands on: every balance it follows, and the event that changed
 * them; null when they were read afresh (at the start, after each reconnection, after
 * each change with `details`). An event of a group not followed yet comes with the read
 * of that group's balance. */
export interface BalancesUpdate {
  balances: Balance[];
  event: BalanceEvent | null;
}

export interface Watch {
  /** Stops the subscription and closes its connection. */
  stop(): Promise<void>;
}

export interface BuyOptions {
  quantity?: number;
  currency?: string;
  /** Confirms the payment with Stripe.js. Without it, `buy` completes the payment in the
   * sandbox (only a service running the sandbox provider accepts that), and `subscribe`
   * throws PAYMENT_FAILED if a first payment is due (the sandbox pays it at once). */
  stripe?: StripeConfirmer;
  /** What Stripe.js confirms with: a saved payment method's id, a card Element's
   * `{ card }`, or in test mode a test method such as "pm_card_visa". */
  paymentMethod?: unknown;
}

const RETRIED_STATUSES = new Set([429, 502, 503, 504]);

/** The service's close codes (README, "Websockets"): a token to refresh, credentials that
 * will not do, a connection the client got wrong. */
const TOKEN_EXPIRED = 4401;
const FORBIDDEN = 4403;
const MALFORMED = 4400;

export class UserCreditsClient {
  private readonly options: Required<
    Pick<ClientOptions, "attempts" | "retryBaseMs" | "retryMaxMs" | "timeoutMs">
  > &
    ClientOptions;
  private readonly fetcher: typeof fetch;

  constructor(options: ClientOptions) {
    this.options = {
      attempts: 4,
      retryBaseMs: 250,
      retryMaxMs: 10_000,
      timeoutMs: 30_000,
      ...options,
    };
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Sends one operation over HTTP; network failures and overloaded answers are tried
   * again (the same variables, so the same idempotency key). */
  async request<R, V>(document: TypedDocumentString<R, V>, variables: V): Promise<R> {
    const body = JSON.stringify({ query: document.toString(), variables });
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetcher(this.address(), {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            Authorization: `Bearer ${await this.token()}`,
          },
          body,
          signal: AbortSignal.timeout(this.options.timeoutMs),
        });
      } catch (error) {
        if (attempt >= this.options.attempts) throw error;
        await sleep(this.backoff(attempt));
        continue;
      }
      if (RETRIED_STATUSES.has(response.status) && attempt < this.options.attempts) {
        // The service's rate limit says when to come back.
        const after = Number(response.headers.get("Retry-After"));
        await sleep(after > 0 ? after * 1000 : this.backoff(attempt));
        continue;
      }
      let result: unknown;
      try {
        result = await response.json();
      } catch {
        throw new UserCreditsError(`HTTP ${response.status} without a GraphQL answer`, "INTERNAL");
      }
      return unwrap<R>(result, response.status);
    }
  }

  /** The current balances first, then again at every change, until `stop()`. After a
   * dropped connection it reconnects with back-off and reads the balances afresh, so a
   * change made while it was away is shown; a subscription the server ends (a subscriber
   * too far behind, a socket closed because its token expired) is made again after a
   * back-off, with the token asked for afresh. A refusal for good (see `onStatus`) ends it. */
  watchBalances(options: WatchOptions, onChange: (update: BalancesUpdate) => void): Watch {
    const group = options.offerGroup ?? null;
    let balances = new Map<string, Balance>();
    let stopped = false;
    let reading: Promise<void> | null = null;
    let changedWhileReading = false;
    // An event of a group not shown yet (a first purchase): told with the read it causes.
    let unseenGroupEvent: BalanceEvent | null = null;
    let unsubscribe = () => {};
    let resubscriptions = 0;

    const emit = (event: BalanceEvent | null) => {
      if (!stopped) onChange({ balances: [...balances.values()], event });
    };
    // The read goes over the subscription's own socket, after its subscribe message, so
    // the server usually follows changes before it reads (it starts each operation in a
    // task of its own, so this order is likely, not promised). It is repeated until no
    // event arrived meanwhile: a read answered after an event it raced may show the older
    // balance.
    const readAfresh = async () => {
      do {
        changedWhileReading = false;
        const wallet = await once(socket, BalancesDocument, {});
        balances = new Map(
          wallet.wallet.balances
            .filter((balance) => group === null || balance.offerGroup === group)
            .map((balance) => [balance.offerGroup, balance]),
        );
      } while (changedWhileReading && !stopped);
      const cause = unseenGroupEvent;
      unseenGroupEvent = null;
      emit(cause);
    };
    const refresh = () => {
      if (stopped) return;
      reading ??= readAfresh()
        .catch((error: unknown) => {
          unseenGroupEvent = null;
          if (!stopped) options.onError?.(error);
        })
        .finally(() => {
          reading = null;
        });
    };
    // graphql-ws sends the subscriptions again when a connection is acknowledged, in
    // microtasks after its `connected` event: the read is sent after them.
    const socket = this.socket(options, () => setTimeout(refresh, 0), () => stopped);
    // The server ended the subscription (an error or a completion is final for graphql-ws,
    // which would not send it again): subscribe again, and read what was missed. A close
    // (told by the socket's `closed` already) ends it too: after 4401 graphql-ws does not
    // reconnect, and subscribing again connects with the token asked for afresh; after a
    // refusal for good nothing is tried again.
    const ended = (error: unknown) => {
      if (stopped) return;
      if (!isCloseEvent(error)) options.onError?.(error);
      else if (this.refusedForGood(error)) return;
      resubscriptions += 1;
      setTimeout(() => {
        if (stopped) return;
        follow();
        refresh();
      }, this.backoff(Math.min(resubscriptions, 10)));
    };
    const follow = () => {
      unsubscribe = socket.subscribe<BalanceChangedSubscription>(
        { query: BalanceChangedDocument.toString(), variables: { offerGroup: group } },
        {
          next: (result) => {
            const event = result.data?.balanceChanged;
            if (!event) {
              options.onError?.(result.errors);
              return;
            }
            resubscriptions = 0;
            changedWhileReading = true;
            const known = balances.get(event.offerGroup);
            if (known) {
              balances.set(event.offerGroup, { ...known, tokens: event.tokens });
              emit(event);
              if (options.details) refresh();
            } else {
              unseenGroupEvent ??= event;
              refresh();
            }
          },
          error: ended,
          complete: () => ended(new UserCreditsError("the server ended the subscription", "ENDED")),
        },
      );
    };
    follow();
    return {
      stop: async () => {
        stopped = true;
        unsubscribe();
        // Not dispose() alone: it waits for a connection attempt in progress (and fails
        // with it) when the server cannot be reached.
        socket.terminate();
        await Promise.resolve(socket.dispose()).catch(() => undefined);
      },
    };
  }

  /** Spends `tokens` of `offerGroup` now. */
  async consume(input: {
    offerGroup: string;
    tokens: number;
    reason?: string;
    idempotencyKey?: string;
  }): Promise<LedgerEntry> {
    const data = await this.request(ConsumeTokensDocument, {
      input: { ...input, idempotencyKey: input.idempotencyKey ?? newKey() },
    });
    return data.consumeTokens;
  }

  /** Holds `tokens` of `offerGroup` for a job; commit or release it afterwards (or it is
   * released after `ttlSeconds`). */
  async reserve(input: {
    offerGroup: string;
    tokens: number;
    ttlSeconds?: number;
    idempotencyKey?: string;
  }): Promise<Reservation> {
    const data = await this.request(ReserveTokensDocument, {
      input: { ...input, idempotencyKey: input.idempotencyKey ?? newKey() },
    });
    return data.reserveTokens;
  }

  /** Spends `tokens` of a reservation (all it holds by default) and gives the rest back.
   * Committing again returns the first commit's entry, so a retry is safe. */
  async commit(reservationId: string, tokens?: number): Promise<LedgerEntry> {
    const data = await this.request(CommitReservationDocument, {
      id: reservationId,
      tokens: tokens ?? null,
    });
    return data.commitReservation;
  }

  /** Gives a reservation's tokens back; releasing twice changes nothing. */
  async release(reservationId: string): Promise<Reservation> {
    const data = await this.request(ReleaseReservationDocument, { id: reservationId });
    return data.releaseReservation;
  }

  /** Reserves `tokens`, runs `job`, commits the tokens it reports as used (none used:
   * released, and `entry` is null), and releases the reservation if the job or the commit
   * fails (the error is thrown on). */
  async withReservation<T>(
    offerGroup: string,
    tokens: number,
    job: (reservation: Reservation) => Promise<{ used: number; result: T }>,
  ): Promise<{ result: T; entry: LedgerEntry | null }> {
    const reservation = await this.reserve({ offerGroup, tokens });
    let outcome: { used: number; result: T };
    try {
      outcome = await job(reservation);
    } catch (error) {
      await this.release(reservation.id).catch(() => undefined); // the job's error matters
      throw error;
    }
    if (outcome.used === 0) {
      await this.release(reservation.id);
      return { result: outcome.result, entry: null };
    }
    try {
      return { result: outcome.result, entry: await this.commit(reservation.id, outcome.used) };
    } catch (error) {
      // Refused (more than held, expired) or unreachable: give the tokens back if we can.
      await this.release(reservation.id).catch(() => undefined);
      throw error;
    }
  }

  /** Orders `offerId` and pays: with Stripe.js when given, else through the sandbox. The
   * tokens are credited when the payment succeeds (with Stripe, when its webhook reaches
   * the service: the order returned may still be PENDING; `watchBalances` shows it). */
  async buy(offerId: string, options: BuyOptions = {}): Promise<Order> {
    const created = await this.request(CreateOrderDocument, {
      input: {
        offerId,
        quantity: options.quantity ?? 1,
        currency: options.currency ?? null,
        idempotencyKey: newKey(),
      },
    });
    const { order, paymentClientSecret } = created.createOrder;
    if (paymentClientSecret === null) return order;
    if (options.stripe) {
      await confirm(options, paymentClientSecret);
      return this.order(order.id);
    }
    const paid = await this.request(CompleteSandboxPaymentDocument, { orderId: order.id });
    return paid.completeSandboxPayment;
  }

  /** Subscribes to a renewing SUBSCRIPTION offer: each paid period credits its tokens for
   * that period. With Stripe the first payment is confirmed with Stripe.js, and the plan
   * turns ACTIVE when its webhook reaches the service (`plans` shows it); the sandbox
   * pays it at once. */
  async subscribe(offerId: string, options: BuyOptions = {}): Promise<Plan> {
    const data = await this.request(SubscribeDocument, {
      input: {
        offerId,
        quantity: options.quantity ?? 1,
        currency: options.currency ?? null,
        idempotencyKey: newKey(),
      },
    });
    const { plan, paymentClientSecret } = data.subscribe;
    if (paymentClientSecret !== null) await confirm(options, paymentClientSecret);
    return plan;
  }

  /** The user's plans, newest first. */
  async plans(): Promise<Plan[]> {
    return (await this.request(PlansDocument, {})).wallet.plans;
  }

  /** Stops a plan's renewal: at the end of its paid period (default), or now. */
  async cancelPlan(id: string, atPeriodEnd = true): Promise<Plan> {
    return (await this.request(CancelPlanDocument, { id, atPeriodEnd })).cancelPlan;
  }

  /** Undoes a cancel at period end, before the period ends. */
  async resumePlan(id: string): Promise<Plan> {
    return (await this.request(ResumePlanDocument, { id })).resumePlan;
  }

  /** One of the user's orders. */
  async order(id: string): Promise<Order> {
    const data = await this.request(OrderDocument, { id });
    if (data.order === null) throw new UserCreditsError(`order ${id} not found`, "NOT_FOUND");
    return data.order;
  }

  /** The offers this user can buy (their overrides and unlocks applied). */
  async offers(offerGroup?: string): Promise<Offer[]> {
    return (await this.request(OffersDocument, { offerGroup: offerGroup ?? null })).offers;
  }

  /** One page of the user's ledger, newest first; pass `endCursor` on for the next. */
  async ledger(page: { offerGroup?: string; first?: number; after?: string | null } = {}) {
    const data = await this.request(LedgerDocument, {
      offerGroup: page.offerGroup ?? null,
      first: page.first ?? 20,
      after: page.after ?? null,
    });
    return data.ledger;
  }

  /** Balances running low and tokens expiring within `withinSeconds` (default a week). */
  async warnings(withinSeconds = 604_800, lowBalance = 0): Promise<CreditWarning[]> {
    const data = await this.request(CreditWarningsDocument, { withinSeconds, lowBalance });
    return data.creditWarnings;
  }

  private socket(
    watch: WatchOptions,
    connected: () => void,
    stopped: () => boolean,
  ): SocketClient {
    const url = this.address();
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.options.webSocketImpl === undefined && typeof globalThis.WebSocket === "undefined") {
      throw new Error(
        'this runtime has no global WebSocket (Node 20): `npm i ws` and pass `webSocketImpl: WebSocket` (from "ws") to UserCreditsClient',
      );
    }
    return createClient({
      url: url.toString(),
      webSocketImpl: this.options.webSocketImpl,
      lazy: false,
      retryAttempts: Number.POSITIVE_INFINITY,
      // graphql-ws itself never retries after 4400 and 4401 (watchBalances reconnects after
      // 4401), and would retry 4403 for ever.
      shouldRetry: (error) => !(isCloseEvent(error) && this.refusedForGood(error)),
      // A connection given up is told by the `closed` event (below), not on the console.
      onNonLazyError: () => undefined,
      retryWait: (retries) => sleep(this.backoff(retries + 1)),
      connectionParams: async () => ({ authorization: `Bearer ${await this.token()}` }),
      on: {
        connected: () => {
          if (stopped()) return;
          watch.onStatus?.("live");
          connected();
        },
        closed: (event) => {
          if (stopped()) return;
          const final = isCloseEvent(event) && this.refusedForGood(event);
          watch.onStatus?.(final ? "refused" : "reconnecting");
          watch.onError?.(event); // its code and reason say why
        },
        error: (error) => watch.onError?.(error),
      },
    });
  }

  /** Whether a close means that connecting again cannot succeed: credentials refused
   * (4403), a malformed connection (4400), or an expired token (4401) that is a fixed
   * string, which no reconnection could refresh. */
  private refusedForGood(event: { code: number }): boolean {
    if (event.code === TOKEN_EXPIRED) return typeof this.options.token === "string";
    return event.code === FORBIDDEN || event.code === MALFORMED;
  }

  /** The address, absolute: a page may give it relative to itself ("/graphql"). */
  private address(): URL {
    return new URL(this.options.url, globalThis.location?.href);
  }

  private async token(): Promise<string> {
    const source = this.options.token;
    return typeof source === "string" ? source : await source();
  }

  /** Doubling waits with jitter (half to the full wait), capped. */
  private backoff(attempt: number): number {
    const wait = Math.min(this.options.retryBaseMs * 2 ** (attempt - 1), this.options.retryMaxMs);
    return wait / 2 + (Math.random() * wait) / 2;
  }
}

/** A fresh idempotency key. */
export function newKey(): string {
  return globalThis.crypto.randomUUID();
}

/** A websocket's CloseEvent (the global one or that of "ws"), as graphql-ws hands it on. */
function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  if (typeof value !== "object" || value === null) return false;
  return typeof (value as { code?: unknown }).code === "number" && "reason" in value;
}

/** One query over a socket: its single result. */
function once<R, V>(
  socket: SocketClient,
  document: TypedDocumentString<R, V>,
  variables: V,
): Promise<R> {
  return new Promise((resolve, reject) => {
    let result: unknown = null;
    socket.subscribe(
      { query: document.toString(), variables: variables as Record<string, unknown> },
      {
        next: (value) => {
          result = value;
        },
        error: reject,
        complete: () => {
          try {
            if (result === null) throw new UserCreditsError("no answer (stopped)", "ENDED");
            resolve(unwrap<R>(result, 200));
          } catch (error) {
            reject(error);
          }
        },
      },
    );
  });
}

/** Confirms a payment with the Stripe.js of `options`; a refusal is PAYMENT_FAILED. */
async function confirm(options: BuyOptions, clientSecret: string): Promise<void> {
  if (!options.stripe) {
    throw new UserCreditsError("this payment is confirmed with Stripe.js: pass `stripe`", "PAYMENT_FAILED");
  }
  const confirmed = await options.stripe.confirmCardPayment(
    clientSecret,
    options.paymentMethod === undefined ? undefined : { payment_method: options.paymentMethod },
  );
  if (confirmed.error) {
    throw new UserCreditsError(confirmed.error.message ?? "payment refused", "PAYMENT_FAILED");
  }
}

function unwrap<R>(body: unknown, status: number): R {
  const result = body as {
    data?: R | null;
    errors?: { message: string; extensions?: { code?: string } }[];
  };
  const error = result.errors?.[0];
  if (error) throw new UserCreditsError(error.message, error.extensions?.code ?? "INTERNAL");
  if (result.data == null) throw new UserCreditsError(`HTTP ${status} without data`, "INTERNAL");
  return result.data;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
