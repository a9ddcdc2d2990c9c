/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
export type ConsumeTokensInput = {
  idempotencyKey: string;
  offerGroup: string;
  reason?: string | null | undefined;
  tokens: number;
  userId?: string | null | undefined;
};

export type CreateOrderInput = {
  currency?: string | null | undefined;
  idempotencyKey?: string | null | undefined;
  offerId: string;
  quantity?: number | null | undefined;
};

export type Cycle =
  | 'BI_WEEKLY'
  | 'CUSTOM'
  | 'DAILY'
  | 'MONTHLY'
  | 'ONCE'
  | 'SEMESTER'
  | 'TRIMESTER'
  | 'WEEKLY'
  | 'YEARLY';

export type LotSource =
  | 'GRANT'
  | 'ORDER';

export type OfferKind =
  | 'EXPERTISE'
  | 'SUBSCRIPTION'
  | 'TOKENS';

export type OrderStatus =
  | 'CANCELED'
  | 'ERROR'
  | 'EXPIRED'
  | 'INCONSISTENT'
  | 'PAID'
  | 'PENDING'
  | 'REFUNDED'
  | 'REFUSED';

export type PlanStatus =
  | 'ACTIVE'
  | 'CANCELED'
  | 'INCOMPLETE'
  | 'PAST_DUE';

export type ReserveTokensInput = {
  idempotencyKey: string;
  offerGroup: string;
  tokens: number;
  ttlSeconds?: number | null | undefined;
  userId?: string | null | undefined;
};

export type SubscribeInput = {
  currency?: string | null | undefined;
  idempotencyKey?: string | null | undefined;
  /** a SUBSCRIPTION offer with a cycle other than ONCE */
  offerId: string;
  quantity?: number | null | undefined;
};

export type BalanceFieldsFragment = { offerGroup: string, tokens: number, reserved: number, starts: string | null, expires: string | null, lots: Array<{ id: string, source: LotSource, tokens: number, remaining: number, starts: string, expires: string | null, note: string | null }>, nextExpiry: { tokens: number, at: string } | null };

export type BalancesQueryVariables = Exact<{ [key: string]: never; }>;


export type BalancesQuery = { wallet: { userId: string, balances: Array<{ offerGroup: string, tokens: number, reserved: number, starts: string | null, expires: string | null, lots: Array<{ id: string, source: LotSource, tokens: number, remaining: number, starts: string, expires: string | null, note: string | null }>, nextExpiry: { tokens: number, at: string } | null }> } };

export type BalanceChangedSubscriptionVariables = Exact<{
  offerGroup?: string | null | undefined;
}>;


export type BalanceChangedSubscription = { balanceChanged: { userId: string, offerGroup: string, tokens: number, delta: number, reason: string, at: string } };

export type OffersQueryVariables = Exact<{
  offerGroup?: string | null | undefined;
}>;


export type OffersQuery = { offers: Array<{ id: string, name: string, kind: OfferKind, offerGroup: string, tokenCount: number, cycle: Cycle, popular: boolean, tags: Array<string>, prices: Array<{ amount: string, currency: string }> }> };

export type OrderFieldsFragment = { id: string, offerId: string, offerGroup: string, quantity: number, tokenCount: number, status: OrderStatus, createdAt: string, total: { amount: string, currency: string } };

export type OrderQueryVariables = Exact<{
  id: string;
}>;


export type OrderQuery = { order: { id: string, offerId: string, offerGroup: string, quantity: number, tokenCount: number, status: OrderStatus, createdAt: string, total: { amount: string, currency: string } } | null };

export type CreateOrderMutationVariables = Exact<{
  input: CreateOrderInput;
}>;


export type CreateOrderMutation = { createOrder: { paymentClientSecret: string | null, order: { id: string, offerId: string, offerGroup: string, quantity: number, tokenCount: number, status: OrderStatus, createdAt: string, total: { amount: string, currency: string } } } };

export type CompleteSandboxPaymentMutationVariables = Exact<{
  orderId: string;
}>;


export type CompleteSandboxPaymentMutation = { completeSandboxPayment: { id: string, offerId: string, offerGroup: string, quantity: number, tokenCount: number, status: OrderStatus, createdAt: string, total: { amount: string, currency: string } } };

export type EntryFieldsFragment = { id: string, offerGroup: string, tokens: number, balanceAfter: number, reason: string, note: string | null, orderId: string | null, createdAt: string };

export type ConsumeTokensMutationVariables = Exact<{
  input: ConsumeTokensInput;
}>;


export type ConsumeTokensMutation = { consumeTokens: { id: string, offerGroup: string, tokens: number, balanceAfter: number, reason: string, note: string | null, orderId: string | null, createdAt: string } };

export type ReservationFieldsFragment = { id: string, offerGroup: string, tokens: number, expiresAt: string, status: string };

export type ReserveTokensMutationVariables = Exact<{
  input: ReserveTokensInput;
}>;


export type ReserveTokensMutation = { reserveTokens: { id: string, offerGroup: string, tokens: number, expiresAt: string, status: string } };

export type CommitReservationMutationVariables = Exact<{
  id: string;
  tokens?: number | null | undefined;
}>;


export type CommitReservationMutation = { commitReservation: { id: string, offerGroup: string, tokens: number, balanceAfter: number, reason: string, note: string | null, orderId: string | null, createdAt: string } };

export type ReleaseReservationMutationVariables = Exact<{
  id: string;
}>;


export type ReleaseReservationMutation = { releaseReservation: { id: string, offerGroup: string, tokens: number, expiresAt: string, status: string } };

export type LedgerQueryVariables = Exact<{
  offerGroup?: string | null | undefined;
  first?: number | null | undefined;
  after?: string | null | undefined;
}>;


export type LedgerQuery = { ledger: { edges: Array<{ node: { id: string, offerGroup: string, tokens: number, balanceAfter: number, reason: string, note: string | null, orderId: string | null, createdAt: string } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type CreditWarningsQueryVariables = Exact<{
  withinSeconds?: number | null | undefined;
  lowBalance?: number | null | undefined;
}>;


export type CreditWarningsQuery = { creditWarnings: Array<{ offerGroup: string, kind: string, tokens: number, expires: string | null }> };

export type PlanFieldsFragment = { id: string, offerId: string, offerGroup: string, quantity: number, status: PlanStatus, currentPeriodStart: string | null, currentPeriodEnd: string | null, cancelAtPeriodEnd: boolean };

export type PlansQueryVariables = Exact<{ [key: string]: never; }>;


export type PlansQuery = { wallet: { plans: Array<{ id: string, offerId: string, offerGroup: string, quantity: number, status: PlanStatus, currentPeriodStart: string | null, currentPeriodEnd: string | null, cancelAtPeriodEnd: boolean }> } };

export type SubscribeMutationVariables = Exact<{
  input: SubscribeInput;
}>;


export type SubscribeMutation = { subscribe: { paymentClientSecret: string | null, plan: { id: string, offerId: string, offerGroup: string, quantity: number, status: PlanStatus, currentPeriodStart: string | null, currentPeriodEnd: string | null, cancelAtPeriodEnd: boolean } } };

export type CancelPlanMutationVariables = Exact<{
  id: string;
  atPeriodEnd?: boolean | null | undefined;
}>;


export type CancelPlanMutation = { cancelPlan: { id: string, offerId: string, offerGroup: string, quantity: number, status: PlanStatus, currentPeriodStart: string | null, currentPeriodEnd: string | null, cancelAtPeriodEnd: boolean } };

export type ResumePlanMutationVariables = Exact<{
  id: string;
}>;


export type ResumePlanMutation = { resumePlan: { id: string, offerId: string, offerGroup: string, quantity: number, status: PlanStatus, currentPeriodStart: string | null, currentPeriodEnd: string | null, cancelAtPeriodEnd: boolean } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const BalanceFieldsFragmentDoc = new TypedDocumentString(`
    fragment BalanceFields on Balance {
  offerGroup
  tokens
  reserved
  starts
  expires
  lots {
    id
    source
    tokens
    remaining
    starts
    expires
    note
  }
  nextExpiry {
    tokens
    at
  }
}
    `, {"fragmentName":"BalanceFields"}) as unknown as TypedDocumentString<BalanceFieldsFragment, unknown>;
export const OrderFieldsFragmentDoc = new TypedDocumentString(`
    fragment OrderFields on Order {
  id
  offerId
  offerGroup
  quantity
  tokenCount
  status
  total {
    amount
    currency
  }
  createdAt
}
    `, {"fragmentName":"OrderFields"}) as unknown as TypedDocumentString<OrderFieldsFragment, unknown>;
export const EntryFieldsFragmentDoc = new TypedDocumentString(`
    fragment EntryFields on LedgerEntry {
  id
  offerGroup
  tokens
  balanceAfter
  reason
  note
  orderId
  createdAt
}
    `, {"fragmentName":"EntryFields"}) as unknown as TypedDocumentString<EntryFieldsFragment, unknown>;
export const ReservationFieldsFragmentDoc = new TypedDocumentString(`
    fragment ReservationFields on Reservation {
  id
  offerGroup
  tokens
  expiresAt
  status
}
    `, {"fragmentName":"ReservationFields"}) as unknown as TypedDocumentString<ReservationFieldsFragment, unknown>;
export const PlanFieldsFragmentDoc = new TypedDocumentString(`
    fragment PlanFields on Plan {
  id
  offerId
  offerGroup
  quantity
  status
  currentPeriodStart
  currentPeriodEnd
  cancelAtPeriodEnd
}
    `, {"fragmentName":"PlanFields"}) as unknown as TypedDocumentString<PlanFieldsFragment, unknown>;
export const BalancesDocument = new TypedDocumentString(`
    query Balances {
  wallet {
    userId
    balances {
      ...BalanceFields
    }
  }
}
    fragment BalanceFields on Balance {
  offerGroup
  tokens
  reserved
  starts
  expires
  lots {
    id
    source
    tokens
    remaining
    starts
    expires
    note
  }
  nextExpiry {
    tokens
    at
  }
}`) as unknown as TypedDocumentString<BalancesQuery, BalancesQueryVariables>;
export const BalanceChangedDocument = new TypedDocumentString(`
    subscription BalanceChanged($offerGroup: String) {
  balanceChanged(offerGroup: $offerGroup) {
    userId
    offerGroup
    tokens
    delta
    reason
    at
  }
}
    `) as unknown as TypedDocumentString<BalanceChangedSubscription, BalanceChangedSubscriptionVariables>;
export const OffersDocument = new TypedDocumentString(`
    query Offers($offerGroup: String) {
  offers(offerGroup: $offerGroup) {
    id
    name
    kind
    offerGroup
    tokenCount
    cycle
    popular
    tags
    prices {
      amount
      currency
    }
  }
}
    `) as unknown as TypedDocumentString<OffersQuery, OffersQueryVariables>;
export const OrderDocument = new TypedDocumentString(`
    query Order($id: ID!) {
  order(id: $id) {
    ...OrderFields
  }
}
    fragment OrderFields on Order {
  id
  offerId
  offerGroup
  quantity
  tokenCount
  status
  total {
    amount
    currency
  }
  createdAt
}`) as unknown as TypedDocumentString<OrderQuery, OrderQueryVariables>;
export const CreateOrderDocument = new TypedDocumentString(`
    mutation CreateOrder($input: CreateOrderInput!) {
  createOrder(input: $input) {
    order {
      ...OrderFields
    }
    paymentClientSecret
  }
}
    fragment OrderFields on Order {
  id
  offerId
  offerGroup
  quantity
  tokenCount
  status
  total {
    amount
    currency
  }
  createdAt
}`) as unknown as TypedDocumentString<CreateOrderMutation, CreateOrderMutationVariables>;
export const CompleteSandboxPaymentDocument = new TypedDocumentString(`
    mutation CompleteSandboxPayment($orderId: ID!) {
  completeSandboxPayment(orderId: $orderId) {
    ...OrderFields
  }
}
    fragment OrderFields on Order {
  id
  offerId
  offerGroup
  quantity
  tokenCount
  status
  total {
    amount
    currency
  }
  createdAt
}`) as unknown as TypedDocumentString<CompleteSandboxPaymentMutation, CompleteSandboxPaymentMutationVariables>;
export const ConsumeTokensDocument = new TypedDocumentString(`
    mutation ConsumeTokens($input: ConsumeTokensInput!) {
  consumeTokens(input: $input) {
    ...EntryFields
  }
}
    fragment EntryFields on LedgerEntry {
  id
  offerGroup
  tokens
  balanceAfter
  reason
  note
  orderId
  createdAt
}`) as unknown as TypedDocumentString<ConsumeTokensMutation, ConsumeTokensMutationVariables>;
export const ReserveTokensDocument = new TypedDocumentString(`
    mutation ReserveTokens($input: ReserveTokensInput!) {
  reserveTokens(input: $input) {
    ...ReservationFields
  }
}
    fragment ReservationFields on Reservation {
  id
  offerGroup
  tokens
  expiresAt
  status
}`) as unknown as TypedDocumentString<ReserveTokensMutation, ReserveTokensMutationVariables>;
export const CommitReservationDocument = new TypedDocumentString(`
    mutation CommitReservation($id: ID!, $tokens: Int) {
  commitReservation(id: $id, tokens: $tokens) {
    ...EntryFields
  }
}
    fragment EntryFields on LedgerEntry {
  id
  offerGroup
  tokens
  balanceAfter
  reason
  note
  orderId
  createdAt
}`) as unknown as TypedDocumentString<CommitReservationMutation, CommitReservationMutationVariables>;
export const ReleaseReservationDocument = new TypedDocumentString(`
    mutation ReleaseReservation($id: ID!) {
  releaseReservation(id: $id) {
    ...ReservationFields
  }
}
    fragment ReservationFields on Reservation {
  id
  offerGroup
  tokens
  expiresAt
  status
}`) as unknown as TypedDocumentString<ReleaseReservationMutation, ReleaseReservationMutationVariables>;
export const LedgerDocument = new TypedDocumentString(`
    query Ledger($offerGroup: String, $first: Int, $after: String) {
  ledger(offerGroup: $offerGroup, first: $first, after: $after) {
    edges {
      node {
        ...EntryFields
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
    fragment EntryFields on LedgerEntry {
  id
  offerGroup
  tokens
  balanceAfter
  reason
  note
  orderId
  createdAt
}`) as unknown as TypedDocumentString<LedgerQuery, LedgerQueryVariables>;
export const CreditWarningsDocument = new TypedDocumentString(`
    query CreditWarnings($withinSeconds: Int, $lowBalance: Int) {
  creditWarnings(withinSeconds: $withinSeconds, lowBalance: $lowBalance) {
    offerGroup
    kind
    tokens
    expires
  }
}
    `) as unknown as TypedDocumentString<CreditWarningsQuery, CreditWarningsQueryVariables>;
export const PlansDocument = new TypedDocumentString(`
    query Plans {
  wallet {
    plans {
      ...PlanFields
    }
  }
}
    fragment PlanFields on Plan {
  id
  offerId
  offerGroup
  quantity
  status
  currentPeriodStart
  currentPeriodEnd
  cancelAtPeriodEnd
}`) as unknown as TypedDocumentString<PlansQuery, PlansQueryVariables>;
export const SubscribeDocument = new TypedDocumentString(`
    mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) {
    plan {
      ...PlanFields
    }
    paymentClientSecret
  }
}
    fragment PlanFields on Plan {
  id
  offerId
  offerGroup
  quantity
  status
  currentPeriodStart
  currentPeriodEnd
  cancelAtPeriodEnd
}`) as unknown as TypedDocumentString<SubscribeMutation, SubscribeMutationVariables>;
export const CancelPlanDocument = new TypedDocumentString(`
    mutation CancelPlan($id: ID!, $atPeriodEnd: Boolean) {
  cancelPlan(id: $id, atPeriodEnd: $atPeriodEnd) {
    ...PlanFields
  }
}
    fragment PlanFields on Plan {
  id
  offerId
  offerGroup
  quantity
  status
  currentPeriodStart
  currentPeriodEnd
  cancelAtPeriodEnd
}`) as unknown as TypedDocumentString<CancelPlanMutation, CancelPlanMutationVariables>;
export const ResumePlanDocument = new TypedDocumentString(`
    mutation ResumePlan($id: ID!) {
  resumePlan(id: $id) {
    ...PlanFields
  }
}
    fragment PlanFields on Plan {
  id
  offerId
  offerGroup
  quantity
  status
  currentPeriodStart
  currentPeriodEnd
  cancelAtPeriodEnd
}`) as unknown as TypedDocumentString<ResumePlanMutation, ResumePlanMutationVariables>;