// node_modules/graphql-ws/dist/common-CGW11Fyb.js
function extendedTypeof(val) {
  if (val === null) {
    return "null";
  }
  if (Array.isArray(val)) {
    return "array";
  }
  return typeof val;
}
function isObject(val) {
  return extendedTypeof(val) === "object";
}
function areGraphQLFormattedErrors(obj) {
  return Array.isArray(obj) && // must be at least one error
  obj.length > 0 && // error has at least a message
  obj.every((ob) => "message" in ob);
}
function limitCloseReason(reason, whenTooLong) {
  return reason.length < 124 ? reason : whenTooLong;
}
var GRAPHQL_TRANSPORT_WS_PROTOCOL = "graphql-transport-ws";
var CloseCode = /* @__PURE__ */ ((CloseCode2) => {
  CloseCode2[CloseCode2["InternalServerError"] = 4500] = "InternalServerError";
  CloseCode2[CloseCode2["InternalClientError"] = 4005] = "InternalClientError";
  CloseCode2[CloseCode2["BadRequest"] = 4400] = "BadRequest";
  CloseCode2[CloseCode2["BadResponse"] = 4004] = "BadResponse";
  CloseCode2[CloseCode2["Unauthorized"] = 4401] = "Unauthorized";
  CloseCode2[CloseCode2["Forbidden"] = 4403] = "Forbidden";
  CloseCode2[CloseCode2["SubprotocolNotAcceptable"] = 4406] = "SubprotocolNotAcceptable";
  CloseCode2[CloseCode2["ConnectionInitialisationTimeout"] = 4408] = "ConnectionInitialisationTimeout";
  CloseCode2[CloseCode2["ConnectionAcknowledgementTimeout"] = 4504] = "ConnectionAcknowledgementTimeout";
  CloseCode2[CloseCode2["SubscriberAlreadyExists"] = 4409] = "SubscriberAlreadyExists";
  CloseCode2[CloseCode2["TooManyInitialisationRequests"] = 4429] = "TooManyInitialisationRequests";
  return CloseCode2;
})(CloseCode || {});
var MessageType = /* @__PURE__ */ ((MessageType2) => {
  MessageType2["ConnectionInit"] = "connection_init";
  MessageType2["ConnectionAck"] = "connection_ack";
  MessageType2["Ping"] = "ping";
  MessageType2["Pong"] = "pong";
  MessageType2["Subscribe"] = "subscribe";
  MessageType2["Next"] = "next";
  MessageType2["Error"] = "error";
  MessageType2["Complete"] = "complete";
  return MessageType2;
})(MessageType || {});
function validateMessage(val) {
  if (!isObject(val)) {
    throw new Error(
      `Message is expected to be an object, but got ${extendedTypeof(val)}`
    );
  }
  if (!val.type) {
    throw new Error(`Message is missing the 'type' property`);
  }
  if (typeof val.type !== "string") {
    throw new Error(
      `Message is expects the 'type' property to be a string, but got ${extendedTypeof(
        val.type
      )}`
    );
  }
  switch (val.type) {
    case "connection_init":
    case "connection_ack":
    case "ping":
    case "pong": {
      if (val.payload != null && !isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object or nullish or missing, but got "${val.payload}"`
        );
      }
      break;
    }
    case "subscribe": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object, but got ${extendedTypeof(
            val.payload
          )}`
        );
      }
      if (typeof val.payload.query !== "string") {
        throw new Error(
          `"${val.type}" message payload expects the 'query' property to be a string, but got ${extendedTypeof(
            val.payload.query
          )}`
        );
      }
      if (val.payload.variables != null && !isObject(val.payload.variables)) {
        throw new Error(
          `"${val.type}" message payload expects the 'variables' property to be a an object or nullish or missing, but got ${extendedTypeof(
            val.payload.variables
          )}`
        );
      }
      if (val.payload.operationName != null && extendedTypeof(val.payload.operationName) !== "string") {
        throw new Error(
          `"${val.type}" message payload expects the 'operationName' property to be a string or nullish or missing, but got ${extendedTypeof(
            val.payload.operationName
          )}`
        );
      }
      if (val.payload.extensions != null && !isObject(val.payload.extensions)) {
        throw new Error(
          `"${val.type}" message payload expects the 'extensions' property to be a an object or nullish or missing, but got ${extendedTypeof(
            val.payload.extensions
          )}`
        );
      }
      break;
    }
    case "next": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!isObject(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an object, but got ${extendedTypeof(
            val.payload
          )}`
        );
      }
      break;
    }
    case "error": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      if (!areGraphQLFormattedErrors(val.payload)) {
        throw new Error(
          `"${val.type}" message expects the 'payload' property to be an array of GraphQL errors, but got ${JSON.stringify(
            val.payload
          )}`
        );
      }
      break;
    }
    case "complete": {
      if (typeof val.id !== "string") {
        throw new Error(
          `"${val.type}" message expects the 'id' property to be a string, but got ${extendedTypeof(
            val.id
          )}`
        );
      }
      if (!val.id) {
        throw new Error(
          `"${val.type}" message requires a non-empty 'id' property`
        );
      }
      break;
    }
    default:
      throw new Error(`Invalid message 'type' property "${val.type}"`);
  }
  return val;
}
function parseMessage(data, reviver) {
  return validateMessage(
    typeof data === "string" ? JSON.parse(data, reviver) : data
  );
}
function stringifyMessage(msg, replacer) {
  validateMessage(msg);
  return JSON.stringify(msg, replacer);
}

// node_modules/graphql-ws/dist/client.js
function createClient(options) {
  const {
    url,
    connectionParams,
    lazy = true,
    onNonLazyError = console.error,
    lazyCloseTimeout: lazyCloseTimeoutMs = 0,
    keepAlive = 0,
    disablePong,
    connectionAckWaitTimeout = 0,
    retryAttempts = 5,
    retryWait = async function randomisedExponentialBackoff(retries2) {
      const retryDelaySeconds = Math.pow(2, retries2);
      await new Promise(
        (resolve) => setTimeout(
          resolve,
          retryDelaySeconds * 1e3 + // add random timeout from 300ms to 3s
          Math.floor(Math.random() * (3e3 - 300) + 300)
        )
      );
    },
    shouldRetry = isLikeCloseEvent,
    on,
    webSocketImpl,
    /**
     * Generates a v4 UUID to be used as the ID using `Math`
     * as the random number generator. Supply your own generator
     * in case you need more uniqueness.
     *
     * Reference: https://gist.github.com/jed/982883
     */
    generateID = function generateUUID() {
      return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
        const r = Math.random() * 16 | 0, v = c == "x" ? r : r & 3 | 8;
        return v.toString(16);
      });
    },
    jsonMessageReplacer: replacer,
    jsonMessageReviver: reviver
  } = options;
  let ws;
  if (webSocketImpl) {
    if (!isWebSocket(webSocketImpl)) {
      throw new Error("Invalid WebSocket implementation provided");
    }
    ws = webSocketImpl;
  } else if (typeof WebSocket !== "undefined") {
    ws = WebSocket;
  } else if (typeof global !== "undefined") {
    ws = global.WebSocket || // @ts-expect-error: Support more browsers
    global.MozWebSocket;
  } else if (typeof window !== "undefined") {
    ws = window.WebSocket || // @ts-expect-error: Support more browsers
    window.MozWebSocket;
  }
  if (!ws)
    throw new Error(
      "WebSocket implementation missing; on Node you can `import WebSocket from 'ws';` and pass `webSocketImpl: WebSocket` to `createClient`"
    );
  const WebSocketImpl = ws;
  const emitter = (() => {
    const message = /* @__PURE__ */ (() => {
      const listeners2 = {};
      return {
        on(id, listener) {
          listeners2[id] = listener;
          return () => {
            delete listeners2[id];
          };
        },
        emit(message2) {
          if ("id" in message2) listeners2[message2.id]?.(message2);
        }
      };
    })();
    const listeners = {
      connecting: on?.connecting ? [on.connecting] : [],
      opened: on?.opened ? [on.opened] : [],
      connected: on?.connected ? [on.connected] : [],
      ping: on?.ping ? [on.ping] : [],
      pong: on?.pong ? [on.pong] : [],
      message: on?.message ? [message.emit, on.message] : [message.emit],
      closed: on?.closed ? [on.closed] : [],
      error: on?.error ? [on.error] : []
    };
    return {
      onMessage: message.on,
      on(event, listener) {
        const l = listeners[event];
        l.push(listener);
        return () => {
          const i = l.indexOf(listener);
          if (i > -1) {
            l.splice(i, 1);
          }
        };
      },
      emit(event, ...args) {
        for (const listener of [...listeners[event]]) {
          listener(...args);
        }
      }
    };
  })();
  function errorOrClosed(cb) {
    const listening = [
      // errors are fatal and more critical than close events, throw them first
      emitter.on("error", (err) => {
        listening.forEach((unlisten) => unlisten());
        cb(err);
      }),
      // closes can be graceful and not fatal, throw them second (if error didnt throw)
      emitter.on("closed", (event) => {
        listening.forEach((unlisten) => unlisten());
        cb(event);
      })
    ];
    return () => listening.forEach((unlisten) => unlisten());
  }
  let connecting, locks = 0, lazyCloseTimeout, retrying = false, retries = 0, disposed = false;
  async function connect() {
    clearTimeout(lazyCloseTimeout);
    const [socket, throwOnClose] = await (connecting ?? (connecting = new Promise(
      (connected, denied) => (async () => {
        if (retrying) {
          await retryWait(retries);
          if (!locks) {
            connecting = void 0;
            return denied({ code: 1e3, reason: "All Subscriptions Gone" });
          }
          retries++;
        }
        emitter.emit("connecting", retrying);
        const socket2 = new WebSocketImpl(
          typeof url === "function" ? await url() : url,
          GRAPHQL_TRANSPORT_WS_PROTOCOL
        );
        let connectionAckTimeout, queuedPing;
        function enqueuePing() {
          if (isFinite(keepAlive) && keepAlive > 0) {
            clearTimeout(queuedPing);
            queuedPing = setTimeout(() => {
              if (socket2.readyState === WebSocketImpl.OPEN) {
                socket2.send(stringifyMessage({ type: MessageType.Ping }));
                emitter.emit("ping", false, void 0);
              }
            }, keepAlive);
          }
        }
        errorOrClosed((errOrEvent) => {
          connecting = void 0;
          clearTimeout(connectionAckTimeout);
          clearTimeout(queuedPing);
          denied(errOrEvent);
          if (errOrEvent instanceof TerminatedCloseEvent) {
            socket2.close(4499, "Terminated");
            socket2.onerror = null;
            socket2.onclose = null;
          }
        });
        socket2.onerror = (err) => emitter.emit("error", err);
        socket2.onclose = (event) => emitter.emit("closed", event);
        socket2.onopen = async () => {
          try {
            emitter.emit("opened", socket2);
            const payload = typeof connectionParams === "function" ? await connectionParams() : connectionParams;
            if (socket2.readyState !== WebSocketImpl.OPEN) return;
            socket2.send(
              stringifyMessage(
                payload ? {
                  type: MessageType.ConnectionInit,
                  payload
                } : {
                  type: MessageType.ConnectionInit
                  // payload is completely absent if not provided
                },
                replacer
              )
            );
            if (isFinite(connectionAckWaitTimeout) && connectionAckWaitTimeout > 0) {
              connectionAckTimeout = setTimeout(() => {
                socket2.close(
                  CloseCode.ConnectionAcknowledgementTimeout,
                  "Connection acknowledgement timeout"
                );
              }, connectionAckWaitTimeout);
            }
            enqueuePing();
          } catch (err) {
            emitter.emit("error", err);
            socket2.close(
              CloseCode.InternalClientError,
              limitCloseReason(
                err instanceof Error ? err.message : String(err),
                "Internal client error"
              )
            );
          }
        };
        let acknowledged = false;
        socket2.onmessage = ({ data }) => {
          try {
            const message = parseMessage(data, reviver);
            emitter.emit("message", message);
            if (message.type === "ping" || message.type === "pong") {
              emitter.emit(message.type, true, message.payload);
              if (message.type === "pong") {
                enqueuePing();
              } else if (!disablePong) {
                socket2.send(
                  stringifyMessage(
                    message.payload ? {
                      type: MessageType.Pong,
                      payload: message.payload
                    } : {
                      type: MessageType.Pong
                      // payload is completely absent if not provided
                    },
                    replacer
                  )
                );
                emitter.emit("pong", false, message.payload);
              }
              return;
            }
            if (acknowledged) return;
            if (message.type !== MessageType.ConnectionAck)
              throw new Error(
                `First message cannot be of type ${message.type}`
              );
            clearTimeout(connectionAckTimeout);
            acknowledged = true;
            emitter.emit("connected", socket2, message.payload, retrying);
            retrying = false;
            retries = 0;
            const throwOnClose2 = new Promise(
              (_, reject) => errorOrClosed(reject)
            );
            throwOnClose2.catch(() => {
            });
            connected([socket2, throwOnClose2]);
          } catch (err) {
            socket2.onmessage = null;
            emitter.emit("error", err);
            socket2.close(
              CloseCode.BadResponse,
              limitCloseReason(
                err instanceof Error ? err.message : String(err),
                "Bad response"
              )
            );
          }
        };
      })()
    )));
    if (socket.readyState === WebSocketImpl.CLOSING) await throwOnClose;
    let release = () => {
    };
    const released = new Promise((resolve) => release = resolve);
    return [
      socket,
      release,
      // resolves on release or rejects on error/close, whichever comes first.
      // not racing with throwOnClose on purpose, it lives as long as the socket
      // and every race would leak memory per operation
      new Promise((resolve, reject) => {
        const unlisten = errorOrClosed(reject);
        if (socket.readyState !== WebSocketImpl.OPEN)
          throwOnClose.catch(reject);
        released.then(() => {
          unlisten();
          if (!locks) {
            const complete = () => socket.close(1e3, "Normal Closure");
            if (isFinite(lazyCloseTimeoutMs) && lazyCloseTimeoutMs > 0) {
              clearTimeout(lazyCloseTimeout);
              lazyCloseTimeout = setTimeout(() => {
                if (!locks && socket.readyState === WebSocketImpl.OPEN)
                  complete();
              }, lazyCloseTimeoutMs);
            } else {
              complete();
            }
          }
          resolve();
        });
      })
    ];
  }
  function shouldRetryConnectOrThrow(errOrCloseEvent) {
    if (isLikeCloseEvent(errOrCloseEvent) && (isFatalInternalCloseCode(errOrCloseEvent.code) || [
      CloseCode.InternalServerError,
      CloseCode.InternalClientError,
      CloseCode.BadRequest,
      CloseCode.BadResponse,
      CloseCode.Unauthorized,
      // CloseCode.Forbidden, might grant access out after retry
      CloseCode.SubprotocolNotAcceptable,
      // CloseCode.ConnectionInitialisationTimeout, might not time out after retry
      // CloseCode.ConnectionAcknowledgementTimeout, might not time out after retry
      CloseCode.SubscriberAlreadyExists,
      CloseCode.TooManyInitialisationRequests
      // 4499, // Terminated, probably because the socket froze, we want to retry
    ].includes(errOrCloseEvent.code)))
      throw errOrCloseEvent;
    if (disposed) return false;
    if (isLikeCloseEvent(errOrCloseEvent) && errOrCloseEvent.code === 1e3)
      return locks > 0;
    if (!retryAttempts || retries >= retryAttempts) throw errOrCloseEvent;
    if (!shouldRetry(errOrCloseEvent)) throw errOrCloseEvent;
    return retrying = true;
  }
  if (!lazy) {
    (async () => {
      locks++;
      for (; ; ) {
        try {
          const [, , throwOnClose] = await connect();
          await throwOnClose;
        } catch (errOrCloseEvent) {
          try {
            if (!shouldRetryConnectOrThrow(errOrCloseEvent)) return;
          } catch (errOrCloseEvent2) {
            return onNonLazyError?.(errOrCloseEvent2);
          }
        }
      }
    })();
  }
  function subscribe(payload, sink) {
    const id = generateID(payload);
    let done = false, errored = false, releaser = () => {
      locks--;
      done = true;
    };
    (async () => {
      locks++;
      for (; ; ) {
        try {
          const [socket, release, waitForReleaseOrThrowOnClose] = await connect();
          if (done) {
            waitForReleaseOrThrowOnClose.catch(() => {
            });
            return release();
          }
          const unlisten = emitter.onMessage(id, (message) => {
            switch (message.type) {
              case MessageType.Next: {
                sink.next(message.payload);
                return;
              }
              case MessageType.Error: {
                errored = true, done = true;
                sink.error(message.payload);
                releaser();
                return;
              }
              case MessageType.Complete: {
                done = true;
                releaser();
                return;
              }
            }
          });
          socket.send(
            stringifyMessage(
              {
                id,
                type: MessageType.Subscribe,
                payload
              },
              replacer
            )
          );
          releaser = () => {
            if (!done && socket.readyState === WebSocketImpl.OPEN)
              socket.send(
                stringifyMessage(
                  {
                    id,
                    type: MessageType.Complete
                  },
                  replacer
                )
              );
            locks--;
            done = true;
            release();
          };
          await waitForReleaseOrThrowOnClose.finally(unlisten);
          return;
        } catch (errOrCloseEvent) {
          if (!shouldRetryConnectOrThrow(errOrCloseEvent)) return;
        }
      }
    })().then(() => {
      if (!errored) sink.complete();
    }).catch((err) => {
      sink.error(err);
    });
    return () => {
      if (!done) releaser();
    };
  }
  return {
    on: emitter.on,
    subscribe,
    iterate(request) {
      const pending = [];
      const deferred = {
        done: false,
        error: null,
        resolve: () => {
        }
      };
      const dispose = subscribe(request, {
        next(val) {
          pending.push(val);
          deferred.resolve();
        },
        error(err) {
          deferred.done = true;
          deferred.error = err;
          deferred.resolve();
        },
        complete() {
          deferred.done = true;
          deferred.resolve();
        }
      });
      const iterator = (async function* iterator2() {
        for (; ; ) {
          if (!pending.length) {
            await new Promise((resolve) => deferred.resolve = resolve);
          }
          while (pending.length) {
            yield pending.shift();
          }
          if (deferred.error) {
            throw deferred.error;
          }
          if (deferred.done) {
            return;
          }
        }
      })();
      iterator.throw = async (err) => {
        if (!deferred.done) {
          deferred.done = true;
          deferred.error = err;
          deferred.resolve();
        }
        return { done: true, value: void 0 };
      };
      iterator.return = async () => {
        dispose();
        return { done: true, value: void 0 };
      };
      return iterator;
    },
    async dispose() {
      disposed = true;
      if (connecting) {
        const [socket] = await connecting;
        socket.close(1e3, "Normal Closure");
      }
    },
    terminate() {
      if (connecting) {
        emitter.emit("closed", new TerminatedCloseEvent());
      }
    }
  };
}
var TerminatedCloseEvent = class extends Error {
  name = "TerminatedCloseEvent";
  message = "4499: Terminated";
  code = 4499;
  reason = "Terminated";
  wasClean = false;
};
function isLikeCloseEvent(val) {
  return isObject(val) && "code" in val && "reason" in val;
}
function isFatalInternalCloseCode(code) {
  if ([
    1e3,
    // Normal Closure is not an erroneous close code
    1001,
    // Going Away
    1006,
    // Abnormal Closure
    1005,
    // No Status Received
    1012,
    // Service Restart
    1013,
    // Try Again Later
    1014
    // Bad Gateway
  ].includes(code))
    return false;
  return code >= 1e3 && code <= 1999;
}
function isWebSocket(val) {
  return typeof val === "function" && "constructor" in val && "CLOSED" in val && "CLOSING" in val && "CONNECTING" in val && "OPEN" in val;
}

// src/generated.ts
var TypedDocumentString = class extends String {
  __apiType;
  value;
  __meta__;
  constructor(value, __meta__) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }
  toString() {
    return this.value;
  }
};
var BalanceFieldsFragmentDoc = new TypedDocumentString(`
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
    `, { "fragmentName": "BalanceFields" });
var OrderFieldsFragmentDoc = new TypedDocumentString(`
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
    `, { "fragmentName": "OrderFields" });
var EntryFieldsFragmentDoc = new TypedDocumentString(`
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
    `, { "fragmentName": "EntryFields" });
var ReservationFieldsFragmentDoc = new TypedDocumentString(`
    fragment ReservationFields on Reservation {
  id
  offerGroup
  tokens
  expiresAt
  status
}
    `, { "fragmentName": "ReservationFields" });
var PlanFieldsFragmentDoc = new TypedDocumentString(`
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
    `, { "fragmentName": "PlanFields" });
var BalancesDocument = new TypedDocumentString(`
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
}`);
var BalanceChangedDocument = new TypedDocumentString(`
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
    `);
var OffersDocument = new TypedDocumentString(`
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
    `);
var OrderDocument = new TypedDocumentString(`
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
}`);
var CreateOrderDocument = new TypedDocumentString(`
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
}`);
var CompleteSandboxPaymentDocument = new TypedDocumentString(`
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
}`);
var ConsumeTokensDocument = new TypedDocumentString(`
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
}`);
var ReserveTokensDocument = new TypedDocumentString(`
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
}`);
var CommitReservationDocument = new TypedDocumentString(`
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
}`);
var ReleaseReservationDocument = new TypedDocumentString(`
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
}`);
var LedgerDocument = new TypedDocumentString(`
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
}`);
var CreditWarningsDocument = new TypedDocumentString(`
    query CreditWarnings($withinSeconds: Int, $lowBalance: Int) {
  creditWarnings(withinSeconds: $withinSeconds, lowBalance: $lowBalance) {
    offerGroup
    kind
    tokens
    expires
  }
}
    `);
var PlansDocument = new TypedDocumentString(`
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
}`);
var SubscribeDocument = new TypedDocumentString(`
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
}`);
var CancelPlanDocument = new TypedDocumentString(`
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
}`);
var ResumePlanDocument = new TypedDocumentString(`
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
}`);

// src/client.ts
var UserCreditsError = class extends Error {
  code;
  constructor(message, code) {
    super(message);
    this.name = "UserCreditsError";
    this.code = code;
  }
};
var RETRIED_STATUSES = /* @__PURE__ */ new Set([429, 502, 503, 504]);
var TOKEN_EXPIRED = 4401;
var FORBIDDEN = 4403;
var MALFORMED = 4400;
var UserCreditsClient = class {
  options;
  fetcher;
  constructor(options) {
    this.options = {
      attempts: 4,
      retryBaseMs: 250,
      retryMaxMs: 1e4,
      timeoutMs: 3e4,
      ...options
    };
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  }
  /** Sends one operation over HTTP; network failures and overloaded answers are tried
   * again (the same variables, so the same idempotency key). */
  async request(document2, variables) {
    const body = JSON.stringify({ query: document2.toString(), variables });
    for (let attempt = 1; ; attempt++) {
      let response;
      try {
        response = await this.fetcher(this.address(), {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            Authorization: `Bearer ${await this.token()}`
          },
          body,
          signal: AbortSignal.timeout(this.options.timeoutMs)
        });
      } catch (error) {
        if (attempt >= this.options.attempts) throw error;
        await sleep(this.backoff(attempt));
        continue;
      }
      if (RETRIED_STATUSES.has(response.status) && attempt < this.options.attempts) {
        const after = Number(response.headers.get("Retry-After"));
        await sleep(after > 0 ? after * 1e3 : this.backoff(attempt));
        continue;
      }
      let result;
      try {
        result = await response.json();
      } catch {
        throw new UserCreditsError(`HTTP ${response.status} without a GraphQL answer`, "INTERNAL");
      }
      return unwrap(result, response.status);
    }
  }
  /** The current balances first, then again at every change, until `stop()`. After a
   * dropped connection it reconnects with back-off and reads the balances afresh, so a
   * change made while it was away is shown; a subscription the server ends (a subscriber
   * too far behind, a socket closed because its token expired) is made again after a
   * back-off, with the token asked for afresh. A refusal for good (see `onStatus`) ends it. */
  watchBalances(options, onChange) {
    const group = options.offerGroup ?? null;
    let balances = /* @__PURE__ */ new Map();
    let stopped = false;
    let reading = null;
    let changedWhileReading = false;
    let unseenGroupEvent = null;
    let unsubscribe = () => {
    };
    let resubscriptions = 0;
    const emit = (event) => {
      if (!stopped) onChange({ balances: [...balances.values()], event });
    };
    const readAfresh = async () => {
      do {
        changedWhileReading = false;
        const wallet = await once(socket, BalancesDocument, {});
        balances = new Map(
          wallet.wallet.balances.filter((balance) => group === null || balance.offerGroup === group).map((balance) => [balance.offerGroup, balance])
        );
      } while (changedWhileReading && !stopped);
      const cause = unseenGroupEvent;
      unseenGroupEvent = null;
      emit(cause);
    };
    const refresh = () => {
      if (stopped) return;
      reading ??= readAfresh().catch((error) => {
        unseenGroupEvent = null;
        if (!stopped) options.onError?.(error);
      }).finally(() => {
        reading = null;
      });
    };
    const socket = this.socket(options, () => setTimeout(refresh, 0), () => stopped);
    const ended = (error) => {
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
      unsubscribe = socket.subscribe(
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
          complete: () => ended(new UserCreditsError("the server ended the subscription", "ENDED"))
        }
      );
    };
    follow();
    return {
      stop: async () => {
        stopped = true;
        unsubscribe();
        socket.terminate();
        await Promise.resolve(socket.dispose()).catch(() => void 0);
      }
    };
  }
  /** Spends `tokens` of `offerGroup` now. */
  async consume(input) {
    const data = await this.request(ConsumeTokensDocument, {
      input: { ...input, idempotencyKey: input.idempotencyKey ?? newKey() }
    });
    return data.consumeTokens;
  }
  /** Holds `tokens` of `offerGroup` for a job; commit or release it afterwards (or it is
   * released after `ttlSeconds`). */
  async reserve(input) {
    const data = await this.request(ReserveTokensDocument, {
      input: { ...input, idempotencyKey: input.idempotencyKey ?? newKey() }
    });
    return data.reserveTokens;
  }
  /** Spends `tokens` of a reservation (all it holds by default) and gives the rest back.
   * Committing again returns the first commit's entry, so a retry is safe. */
  async commit(reservationId, tokens) {
    const data = await this.request(CommitReservationDocument, {
      id: reservationId,
      tokens: tokens ?? null
    });
    return data.commitReservation;
  }
  /** Gives a reservation's tokens back; releasing twice changes nothing. */
  async release(reservationId) {
    const data = await this.request(ReleaseReservationDocument, { id: reservationId });
    return data.releaseReservation;
  }
  /** Reserves `tokens`, runs `job`, commits the tokens it reports as used (none used:
   * released, and `entry` is null), and releases the reservation if the job or the commit
   * fails (the error is thrown on). */
  async withReservation(offerGroup, tokens, job) {
    const reservation = await this.reserve({ offerGroup, tokens });
    let outcome;
    try {
      outcome = await job(reservation);
    } catch (error) {
      await this.release(reservation.id).catch(() => void 0);
      throw error;
    }
    if (outcome.used === 0) {
      await this.release(reservation.id);
      return { result: outcome.result, entry: null };
    }
    try {
      return { result: outcome.result, entry: await this.commit(reservation.id, outcome.used) };
    } catch (error) {
      await this.release(reservation.id).catch(() => void 0);
      throw error;
    }
  }
  /** Orders `offerId` and pays: with Stripe.js when given, else through the sandbox. The
   * tokens are credited when the payment succeeds (with Stripe, when its webhook reaches
   * the service: the order returned may still be PENDING; `watchBalances` shows it). */
  async buy(offerId, options = {}) {
    const created = await this.request(CreateOrderDocument, {
      input: {
        offerId,
        quantity: options.quantity ?? 1,
        currency: options.currency ?? null,
        idempotencyKey: newKey()
      }
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
  async subscribe(offerId, options = {}) {
    const data = await this.request(SubscribeDocument, {
      input: {
        offerId,
        quantity: options.quantity ?? 1,
        currency: options.currency ?? null,
        idempotencyKey: newKey()
      }
    });
    const { plan, paymentClientSecret } = data.subscribe;
    if (paymentClientSecret !== null) await confirm(options, paymentClientSecret);
    return plan;
  }
  /** The user's plans, newest first. */
  async plans() {
    return (await this.request(PlansDocument, {})).wallet.plans;
  }
  /** Stops a plan's renewal: at the end of its paid period (default), or now. */
  async cancelPlan(id, atPeriodEnd = true) {
    return (await this.request(CancelPlanDocument, { id, atPeriodEnd })).cancelPlan;
  }
  /** Undoes a cancel at period end, before the period ends. */
  async resumePlan(id) {
    return (await this.request(ResumePlanDocument, { id })).resumePlan;
  }
  /** One of the user's orders. */
  async order(id) {
    const data = await this.request(OrderDocument, { id });
    if (data.order === null) throw new UserCreditsError(`order ${id} not found`, "NOT_FOUND");
    return data.order;
  }
  /** The offers this user can buy (their overrides and unlocks applied). */
  async offers(offerGroup) {
    return (await this.request(OffersDocument, { offerGroup: offerGroup ?? null })).offers;
  }
  /** One page of the user's ledger, newest first; pass `endCursor` on for the next. */
  async ledger(page = {}) {
    const data = await this.request(LedgerDocument, {
      offerGroup: page.offerGroup ?? null,
      first: page.first ?? 20,
      after: page.after ?? null
    });
    return data.ledger;
  }
  /** Balances running low and tokens expiring within `withinSeconds` (default a week). */
  async warnings(withinSeconds = 604800, lowBalance = 0) {
    const data = await this.request(CreditWarningsDocument, { withinSeconds, lowBalance });
    return data.creditWarnings;
  }
  socket(watch, connected, stopped) {
    const url = this.address();
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.options.webSocketImpl === void 0 && typeof globalThis.WebSocket === "undefined") {
      throw new Error(
        'this runtime has no global WebSocket (Node 20): `npm i ws` and pass `webSocketImpl: WebSocket` (from "ws") to UserCreditsClient'
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
      onNonLazyError: () => void 0,
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
          watch.onError?.(event);
        },
        error: (error) => watch.onError?.(error)
      }
    });
  }
  /** Whether a close means that connecting again cannot succeed: credentials refused
   * (4403), a malformed connection (4400), or an expired token (4401) that is a fixed
   * string, which no reconnection could refresh. */
  refusedForGood(event) {
    if (event.code === TOKEN_EXPIRED) return typeof this.options.token === "string";
    return event.code === FORBIDDEN || event.code === MALFORMED;
  }
  /** The address, absolute: a page may give it relative to itself ("/graphql"). */
  address() {
    return new URL(this.options.url, globalThis.location?.href);
  }
  async token() {
    const source = this.options.token;
    return typeof source === "string" ? source : await source();
  }
  /** Doubling waits with jitter (half to the full wait), capped. */
  backoff(attempt) {
    const wait = Math.min(this.options.retryBaseMs * 2 ** (attempt - 1), this.options.retryMaxMs);
    return wait / 2 + Math.random() * wait / 2;
  }
};
function newKey() {
  return globalThis.crypto.randomUUID();
}
function isCloseEvent(value) {
  if (typeof value !== "object" || value === null) return false;
  return typeof value.code === "number" && "reason" in value;
}
function once(socket, document2, variables) {
  return new Promise((resolve, reject) => {
    let result = null;
    socket.subscribe(
      { query: document2.toString(), variables },
      {
        next: (value) => {
          result = value;
        },
        error: reject,
        complete: () => {
          try {
            if (result === null) throw new UserCreditsError("no answer (stopped)", "ENDED");
            resolve(unwrap(result, 200));
          } catch (error) {
            reject(error);
          }
        }
      }
    );
  });
}
async function confirm(options, clientSecret) {
  if (!options.stripe) {
    throw new UserCreditsError("this payment is confirmed with Stripe.js: pass `stripe`", "PAYMENT_FAILED");
  }
  const confirmed = await options.stripe.confirmCardPayment(
    clientSecret,
    options.paymentMethod === void 0 ? void 0 : { payment_method: options.paymentMethod }
  );
  if (confirmed.error) {
    throw new UserCreditsError(confirmed.error.message ?? "payment refused", "PAYMENT_FAILED");
  }
}
function unwrap(body, status) {
  const result = body;
  const error = result.errors?.[0];
  if (error) throw new UserCreditsError(error.message, error.extensions?.code ?? "INTERNAL");
  if (result.data == null) throw new UserCreditsError(`HTTP ${status} without data`, "INTERNAL");
  return result.data;
}
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// demo/words.ts
var SENTENCES = {
  INSUFFICIENT_TOKENS: "Not enough tokens for that. Buy more below, or use fewer.",
  OFFER_NOT_AVAILABLE: "That offer is no longer on sale to you. The offers are up to date now: pick one of them.",
  QUANTITY_LIMIT: "That is more than one order may hold. Buy fewer at a time.",
  PAYMENT_FAILED: "The payment did not go through. Try again, or pay another way.",
  EXPIRED: "That hold has run out and its tokens are back in the balance. Hold them again.",
  NOT_FOUND: "That is no longer there. The page shows what is there now.",
  CONFLICT: "Something else changed this at the same moment. Try again.",
  BAD_USER_INPUT: "That was not accepted. Check the number of tokens: a whole number above 0.",
  UNAUTHENTICATED: "Your demo session has ended. Reload the page to sign in again.",
  FORBIDDEN: "This demo user may not do that.",
  INTERNAL: "The service had a problem. Try again in a moment."
};
var UNREACHABLE = "The service cannot be reached. Check that it is running, then try again.";
function explain(error) {
  if (error instanceof UserCreditsError) {
    const sentence = SENTENCES[error.code] ?? SENTENCES.INTERNAL;
    return { sentence, detail: `${error.message} (${error.code})` };
  }
  return { sentence: UNREACHABLE, detail: String(error) };
}
function staleOffers(error) {
  return error instanceof UserCreditsError && (error.code === "OFFER_NOT_AVAILABLE" || error.code === "NOT_FOUND");
}
var NUMBERS = new Intl.NumberFormat("en");
function count(tokens) {
  return NUMBERS.format(tokens);
}
function tokensOf(tokens, group) {
  return `${count(tokens)} ${group} ${Math.abs(tokens) === 1 ? "token" : "tokens"}`;
}
function when(iso) {
  return iso === null ? "never" : new Date(iso).toLocaleString();
}
function day(iso) {
  return iso === null ? "never" : new Date(iso).toLocaleDateString();
}
function price(amount, currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).format(Number(amount));
}

// demo/catalogue.ts
var OFFERS = new TypedDocumentString(`
  query DemoOffers {
    offers {
      id name kind offerGroup tokenCount cycle customCycleSeconds popular
      prices { amount currency }
      combinedItems { offerId offerGroup quantity cycle customCycleSeconds tokenCount }
    }
  }`);
async function readOffers(client) {
  return (await client.request(OFFERS, {})).offers;
}
var PERIODS = {
  DAILY: ["day", "a day"],
  WEEKLY: ["week", "a week"],
  BI_WEEKLY: ["two weeks", "two weeks"],
  MONTHLY: ["month", "a month"],
  TRIMESTER: ["three months", "three months"],
  SEMESTER: ["six months", "six months"],
  YEARLY: ["year", "a year"]
};
function period(cycle, customSeconds) {
  if (cycle === "ONCE") return null;
  if (cycle !== "CUSTOM") return PERIODS[cycle];
  const seconds = customSeconds ?? 0;
  const [size, unit] = seconds % 86400 === 0 ? [seconds / 86400, "day"] : [Math.round(seconds / 3600), "hour"];
  const span = `${size} ${unit}${size === 1 ? "" : "s"}`;
  return [span, span];
}
function validity(cycle, customSeconds) {
  const span = period(cycle, customSeconds);
  return span === null ? "that never expire" : `valid for ${span[1]}`;
}
function renews(offer) {
  return offer.kind === "SUBSCRIPTION" && offer.cycle !== "ONCE";
}
function gives(offer) {
  const lines = offer.combinedItems.map((item) => {
    const [cycle, seconds] = item.cycle ? [item.cycle, item.customCycleSeconds] : [offer.cycle, offer.customCycleSeconds];
    return `${tokensOf(item.tokenCount, item.offerGroup)} ${validity(cycle, seconds)}`;
  });
  if (offer.tokenCount > 0 || lines.length === 0) {
    const own = validity(offer.cycle, offer.customCycleSeconds);
    lines.unshift(`${tokensOf(offer.tokenCount, offer.offerGroup)} ${own}`);
  }
  return lines;
}
function terms(offer) {
  const span = period(offer.cycle, offer.customCycleSeconds);
  if (renews(offer) && span !== null) {
    return `Subscribe: renews every ${span[0]} until you cancel. Buy: ${span[1]}, no renewal.`;
  }
  return "One payment, no renewal.";
}
function every(offer) {
  const span = period(offer.cycle, offer.customCycleSeconds);
  return span === null ? "" : `every ${span[0]}`;
}

// demo/dom.ts
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}
function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}
function button(label2, kind, name, onClick) {
  const made = h("button", { type: "button", class: kind, "aria-label": name }, label2);
  const clickable = made;
  clickable.addEventListener("click", () => onClick(clickable));
  return clickable;
}
function byId(id) {
  return document.getElementById(id);
}

// demo/chart.ts
var WIDTH = 320;
var HEIGHT = 120;
var LEFT = 44;
var RIGHT = 8;
var TOP = 10;
var BOTTOM = 20;
function balanceChart(group, points, now) {
  const last = points.at(-1);
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": `${group} balance over time`,
    "data-points": String(points.length),
    "data-last": last === void 0 ? "" : String(last.balance)
  });
  if (last === void 0) {
    chart.append(label(WIDTH / 2, HEIGHT / 2, "No movements yet", "middle"));
    return chart;
  }
  const start = points[0].at;
  const end = Math.max(now, last.at);
  const span = Math.max(end - start, 1);
  const balances = points.map((p) => p.balance);
  const high = Math.max(...balances, 1);
  const low = Math.min(...balances, 0);
  const x = (at) => LEFT + (at - start) / span * (WIDTH - LEFT - RIGHT);
  const y = (balance) => TOP + (high - balance) / (high - low) * (HEIGHT - TOP - BOTTOM);
  let line = `M${x(start).toFixed(1)},${y(points[0].balance).toFixed(1)}`;
  for (const point of points.slice(1)) {
    line += ` H${x(point.at).toFixed(1)} V${y(point.balance).toFixed(1)}`;
  }
  line += ` H${x(end).toFixed(1)}`;
  const area = `${line} V${y(low).toFixed(1)} H${x(start).toFixed(1)} Z`;
  chart.append(
    svg("title", {}, `${group}: ${last.balance} now, after ${points.length} movements`),
    svg("line", {
      class: "axis",
      x1: String(LEFT),
      x2: String(WIDTH - RIGHT),
      y1: String(y(0)),
      y2: String(y(0))
    }),
    svg("path", { class: "area", d: area }),
    svg("path", { class: "line", d: line }),
    label(LEFT - 4, y(high) + 4, compact(high), "end"),
    label(LEFT - 4, y(low) + 4, compact(low), "end"),
    label(LEFT, HEIGHT - 4, since(start, end), "start"),
    label(WIDTH - RIGHT, HEIGHT - 4, "now", "end")
  );
  return chart;
}
function label(x, y, text, anchor) {
  return svg("text", { x: String(x), y: String(y), "text-anchor": anchor }, text);
}
function since(start, end) {
  const date = new Date(start);
  return end - start < 864e5 ? date.toLocaleTimeString() : date.toLocaleDateString();
}
function compact(value) {
  return new Intl.NumberFormat("en", { notation: "compact" }).format(value);
}

// demo/main.ts
var GRAPHQL = new URL("/graphql", location.href).toString();
var LEDGER_PAGE = 10;
var CHART_ENTRIES = 100;
var NOTICE_MS = 6e3;
var PROBLEM_MS = 15e3;
var TEST_CARD = "pm_card_visa";
async function loadStripe(publishableKey) {
  if (!window.Stripe) {
    await new Promise((resolve, reject) => {
      const script = h("script", { src: "https://js.stripe.com/v3/" });
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => reject(new Error("Stripe.js did not load")));
      document.head.append(script);
    });
  }
  return window.Stripe(publishableKey);
}
var Latest = class {
  asked = 0;
  async show(read, shown) {
    const mine = ++this.asked;
    const value = await read();
    if (value !== null && mine === this.asked) shown(value);
  }
};
var Demo = class {
  client = null;
  stripe = null;
  watch = null;
  reservations = [];
  history = /* @__PURE__ */ new Map();
  page = 0;
  cursors = [null];
  noticeTimer;
  reads = {
    offers: new Latest(),
    ledger: new Latest(),
    history: new Latest(),
    plans: new Latest(),
    warnings: new Latest()
  };
  async start() {
    byId("user").addEventListener("change", () => void this.signIn());
    byId("spend").addEventListener("submit", (event) => {
      event.preventDefault();
      const submitter = event.submitter;
      void this.spend(submitter?.value ?? "consume", submitter);
    });
    byId("ledger-older").addEventListener("click", () => void this.ledgerPage(1));
    byId("ledger-newer").addEventListener("click", () => void this.ledgerPage(-1));
    await this.signIn();
  }
  async signIn() {
    const select = byId("user");
    select.disabled = true;
    try {
      await this.watch?.stop();
      this.watch = null;
      const user = select.value;
      const session = await this.session(user);
      let current = session;
      const token = async () => {
        if (Date.now() > current.renewAt) current = await this.session(user);
        return current.token;
      };
      this.client = new UserCreditsClient({ url: GRAPHQL, token });
      if (session.stripePublishableKey) {
        this.stripe = await this.guard(() => loadStripe(session.stripePublishableKey));
        byId("payments").textContent = "Stripe test mode: paid with Stripe's test Visa card.";
      }
      this.reservations = [];
      this.history = /* @__PURE__ */ new Map();
      this.page = 0;
      this.cursors = [null];
      this.status("connecting");
      const client = this.client;
      this.watch = client.watchBalances(
        {
          details: true,
          onStatus: (status) => this.status(status),
          onError: (error) => console.warn("balances:", error)
        },
        // Updates of a watch left behind by a switch of user are dropped.
        (update) => void (this.client === client && this.changed(update))
      );
      await Promise.all([this.showOffers(), this.showReservations(), this.showPlans()]);
    } catch (error) {
      this.problem(error, "Could not sign in.");
    } finally {
      select.disabled = false;
    }
  }
  async session(user) {
    const answer = await fetch("/demo/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user })
    });
    if (!answer.ok) throw new Error(`${answer.status} ${await answer.text()}`);
    const session = await answer.json();
    return { ...session, renewAt: Date.now() + (session.expiresIn - 60) * 1e3 };
  }
  status(status) {
    const badge = byId("connection");
    badge.textContent = status;
    badge.dataset.status = status;
  }
  /** A change of balance, here or anywhere: it may also unlock or replace offers (a
   * purchase in another tab), so the offers are read again with the ledger. */
  async changed(update) {
    this.showBalances(update.balances);
    if (update.event) {
      const { delta, offerGroup, reason } = update.event;
      byId("last-change").textContent = `${offerGroup}: ${delta > 0 ? "+" : ""}${delta} (${reason.toLowerCase()})`;
    }
    await Promise.all([
      this.ledgerPage(0),
      this.showHistory(),
      this.showWarnings(),
      update.event ? this.showOffers() : null
    ]);
  }
  showBalances(balances) {
    const groups = byId("group");
    const chosen = groups.value;
    groups.replaceChildren(
      ...balances.map((b) => h("option", { value: b.offerGroup }, b.offerGroup))
    );
    if (balances.some((b) => b.offerGroup === chosen)) groups.value = chosen;
    byId("balances").replaceChildren(
      ...balances.length === 0 ? [h("p", { class: "empty" }, "No tokens yet: buy an offer below.")] : balances.map((balance) => this.balanceCard(balance))
    );
  }
  balanceCard(balance) {
    const lots = h(
      "table",
      { class: "lots" },
      h(
        "thead",
        {},
        h("tr", {}, h("th", {}, "Lot"), h("th", {}, "Left"), h("th", {}, "Expires"))
      ),
      h(
        "tbody",
        {},
        ...balance.lots.map(
          (lot) => h(
            "tr",
            {},
            h("td", {}, lot.source.toLowerCase()),
            h("td", {}, `${lot.remaining} / ${lot.tokens}`),
            h("td", {}, when(lot.expires))
          )
        )
      )
    );
    const next = balance.nextExpiry ? `${count(balance.nextExpiry.tokens)} expire ${when(balance.nextExpiry.at)}` : "nothing expires";
    return h(
      "article",
      { class: "balance", "data-group": balance.offerGroup },
      h("h3", {}, balance.offerGroup),
      h(
        "p",
        { class: "tokens" },
        h("span", { class: "amount" }, String(balance.tokens)),
        " tokens"
      ),
      h("p", { class: "muted" }, `${count(balance.reserved)} held; ${next}`),
      h("div", { class: "chart-box" }, this.chart(balance.offerGroup)),
      lots
    );
  }
  chart(group) {
    return balanceChart(group, this.history.get(group) ?? [], Date.now());
  }
  /** The charts' movements, read again at each change so they follow it live. */
  async showHistory() {
    const client = this.client;
    await this.reads.history.show(
      () => this.guard(() => client.ledger({ first: CHART_ENTRIES })),
      (page) => {
        const history = /* @__PURE__ */ new Map();
        for (const { node } of [...page.edges].reverse()) {
          const points = history.get(node.offerGroup) ?? [];
          points.push({ at: Date.parse(node.createdAt), balance: node.balanceAfter });
          history.set(node.offerGroup, points);
        }
        this.history = history;
        for (const box of document.querySelectorAll(".balance")) {
          box.querySelector(".chart-box")?.replaceChildren(this.chart(box.dataset.group));
        }
      }
    );
  }
  async showOffers() {
    const client = this.client;
    await this.reads.offers.show(
      () => this.guard(() => readOffers(client)),
      (offers) => {
        byId("offers").replaceChildren(
          ...offers.length === 0 ? [h("li", { class: "empty" }, "Nothing on sale right now.")] : offers.map((offer) => this.offerCard(offer))
        );
      }
    );
  }
  offerCard(offer) {
    const cost = offer.prices[0];
    const actions = [
      button("Buy", "primary", `Buy ${offer.name}`, (b) => void this.buy(offer, b))
    ];
    if (renews(offer)) {
      actions.push(
        button(
          "Subscribe",
          "primary",
          `Subscribe to ${offer.name}`,
          (b) => void this.subscribe(offer, b)
        )
      );
    }
    return h(
      "li",
      { class: "offer", "data-offer": offer.id },
      h(
        "div",
        { class: "offer-head" },
        h("h3", { class: "name" }, offer.name),
        ...offer.popular ? [h("span", { class: "tag" }, "Popular")] : [],
        h("span", { class: "price" }, cost ? price(cost.amount, cost.currency) : "free")
      ),
      h("ul", { class: "gives" }, ...gives(offer).map((line) => h("li", {}, line))),
      h("p", { class: "terms" }, terms(offer)),
      h("div", { class: "actions" }, ...actions)
    );
  }
  async buy(offer, button2) {
    const order = await this.busy(button2, () => this.client.buy(offer.id, this.payment()));
    if (order?.status === "PAID") this.notice(`Bought ${offer.name}: ${gives(offer).join("; ")}.`);
    else if (order) {
      const status = order.status.toLowerCase();
      this.notice(`${offer.name}: payment ${status}; the tokens show once it is paid.`);
    }
    await this.showOffers();
  }
  payment() {
    return this.stripe ? { stripe: this.stripe, paymentMethod: TEST_CARD } : {};
  }
  async subscribe(offer, button2) {
    const plan = await this.busy(button2, () => this.client.subscribe(offer.id, this.payment()));
    if (plan) {
      const next = day(plan.currentPeriodEnd);
      const status = plan.status.toLowerCase();
      this.notice(
        plan.status === "ACTIVE" ? `Subscribed to ${offer.name}: it renews ${every(offer)}, next on ${next}.` : `Subscribed to ${offer.name}: the plan is ${status} until its payment is confirmed.`
      );
    }
    await Promise.all([this.showPlans(), this.showOffers()]);
  }
  async showPlans() {
    const client = this.client;
    await this.reads.plans.show(
      () => this.guard(() => client.plans()),
      (plans) => byId("plans").replaceChildren(
        ...plans.length === 0 ? [h("li", { class: "empty" }, "None: subscribe to an offer below.")] : plans.map((plan) => this.planItem(plan))
      )
    );
  }
  planItem(plan) {
    const what = `${plan.offerGroup} plan`;
    const live = plan.status !== "CANCELED";
    const next = !live ? "" : plan.cancelAtPeriodEnd ? `, ends ${when(plan.currentPeriodEnd)}` : `, renews ${when(plan.currentPeriodEnd)}`;
    const client = this.client;
    const kept = "the tokens already credited stay";
    const change = (label2, question, call, said) => {
      const kind = question ? "danger" : "secondary";
      const made = button(label2, kind, `${label2}: ${what}`, (b) => {
        void this.changePlan(b, call, said);
      });
      if (question) made.dataset.confirm = question;
      return made;
    };
    const buttons = [];
    if (live && plan.cancelAtPeriodEnd) {
      buttons.push(
        change(
          "Resume",
          null,
          () => client.resumePlan(plan.id),
          (p) => `The ${what} renews again on ${day(p.currentPeriodEnd)}.`
        )
      );
    }
    if (live && !plan.cancelAtPeriodEnd) {
      const last = day(plan.currentPeriodEnd);
      buttons.push(
        change(
          "Cancel",
          `Cancel the ${what}? It stops renewing and ends on ${last}; ${kept}.`,
          () => client.cancelPlan(plan.id),
          (p) => `The ${what} will not renew: it ends on ${day(p.currentPeriodEnd)}.`
        )
      );
    }
    if (live) {
      buttons.push(
        change(
          "End now",
          `End the ${what} now? It ends at once and does not renew; ${kept}.`,
          () => client.cancelPlan(plan.id, false),
          () => `The ${what} has ended; its tokens stay.`
        )
      );
    }
    return h(
      "li",
      { class: "plan", "data-plan": plan.id, "data-status": plan.status },
      h("span", {}, `${what}: ${plan.status.toLowerCase().replace("_", " ")}${next}`),
      h("span", { class: "actions" }, ...buttons)
    );
  }
  /** Changes a plan, once the person agrees when the button asks (`data-confirm`). */
  async changePlan(button2, change, said) {
    const question = button2.dataset.confirm;
    if (question && !window.confirm(question)) return;
    const plan = await this.busy(button2, change);
    if (plan) this.notice(said(plan));
    await Promise.all([this.showPlans(), this.showOffers()]);
  }
  async spend(action, submitter) {
    const group = byId("group").value;
    const tokens = Number(byId("tokens").value);
    if (!group) {
      this.say("problem", "You have no tokens to use yet. Buy an offer below first.");
      return;
    }
    const client = this.client;
    const run = (call) => submitter ? this.busy(submitter, call) : this.guard(call);
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
  async settle(reservation, commit, button2) {
    const client = this.client;
    const what = tokensOf(reservation.tokens, reservation.offerGroup);
    const done = await this.busy(
      button2,
      () => commit ? client.commit(reservation.id) : client.release(reservation.id)
    );
    if (done) {
      this.reservations = this.reservations.filter((r) => r.id !== reservation.id);
      this.notice(
        commit ? `Spent the ${what} held.` : `Released the ${what} held: they are back in the balance.`
      );
    }
    await this.showReservations();
  }
  async showReservations() {
    byId("reservations").replaceChildren(
      ...this.reservations.length === 0 ? [h("li", { class: "empty" }, "None: hold tokens with Reserve.")] : this.reservations.map((reservation) => {
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
            })
          )
        );
      })
    );
  }
  /** Moves through the ledger: +1 older, -1 newer, 0 the same page again. */
  async ledgerPage(step) {
    const target = Math.max(0, this.page + step);
    const after = this.cursors[target] ?? null;
    const client = this.client;
    await this.reads.ledger.show(
      () => this.guard(() => client.ledger({ first: LEDGER_PAGE, after })),
      (page) => {
        this.page = target;
        this.cursors[target + 1] = page.pageInfo.endCursor;
        byId("ledger").replaceChildren(
          ...page.edges.length === 0 ? [h("tr", { class: "empty" }, h("td", { colspan: "5" }, "Nothing bought yet."))] : page.edges.map(({ node }) => this.ledgerRow(node))
        );
        byId("ledger-older").disabled = !page.pageInfo.hasNextPage;
        byId("ledger-newer").disabled = target === 0;
        byId("ledger-page").textContent = `page ${target + 1}`;
      }
    );
  }
  ledgerRow(entry) {
    const cell = (label2, text, kind = "") => h("td", { "data-label": label2, class: kind }, text);
    return h(
      "tr",
      {},
      cell("When", when(entry.createdAt)),
      cell("Group", entry.offerGroup),
      entry.tokens > 0 ? cell("Tokens", `+${entry.tokens}`, "credit") : cell("Tokens", String(entry.tokens), "debit"),
      cell("Reason", entry.reason.toLowerCase()),
      cell("Balance", String(entry.balanceAfter))
    );
  }
  async showWarnings() {
    const client = this.client;
    await this.reads.warnings.show(
      () => this.guard(() => client.warnings(604800, 100)),
      (warnings) => byId("warnings").replaceChildren(
        ...warnings.length === 0 ? [h("li", { class: "empty" }, "None.")] : warnings.map(
          (w) => h(
            "li",
            {},
            `${w.offerGroup}: ${w.kind.toLowerCase().replace(/_/g, " ")}, ${count(w.tokens)} tokens` + (w.expires ? `, ${when(w.expires)}` : "")
          )
        )
      )
    );
  }
  /** Runs an action of a button: the button waits while it runs. */
  async busy(button2, call) {
    button2.disabled = true;
    try {
      return await this.guard(call);
    } finally {
      button2.disabled = false;
    }
  }
  /** Runs a call and shows a refusal in words instead of throwing; a refusal that means
   * the offers shown are out of date reads them again. */
  async guard(call) {
    try {
      return await call();
    } catch (error) {
      this.problem(error);
      if (staleOffers(error) && this.client) void this.showOffers();
      return null;
    }
  }
  problem(error, before = "") {
    const { sentence, detail } = explain(error);
    this.say("problem", before ? `${before} ${sentence}` : sentence, detail);
  }
  notice(text) {
    this.say("notice", text);
  }
  /** Shows one message, in place of any older one, until a newer one or a while passes. */
  say(kind, text, detail = "") {
    const [shown, hidden] = kind === "notice" ? ["notice", "problem"] : ["problem", "notice"];
    byId(hidden).replaceChildren();
    byId(hidden).hidden = true;
    const box = byId(shown);
    box.replaceChildren(
      h("span", { class: "sentence" }, text),
      ...detail ? [" ", h("span", { class: "detail" }, `Details: ${detail}`)] : []
    );
    box.hidden = false;
    window.clearTimeout(this.noticeTimer);
    this.noticeTimer = window.setTimeout(
      () => {
        box.replaceChildren();
        box.hidden = true;
      },
      kind === "notice" ? NOTICE_MS : PROBLEM_MS
    );
  }
};
void new Demo().start();
