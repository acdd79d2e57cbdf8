/**
 * Typed errors raised by the libp2p adapter's send layer and inbound handler.
 */

/**
 * Why an outbound dial or request failed.
 *
 * Peer faults (the peer stack scores these):
 * - `dial-timeout`: no connection within the dial timeout
 * - `dial-refused`: the dial failed for another reason (refused, no usable addresses, ...)
 * - `protocol-unsupported`: connected, but the peer does not speak the protocol
 * - `stream-reset`: the stream was reset or closed by the remote before a response
 * - `timeout`: no response within the request timeout
 * - `bad-response`: undecodable, oversize, or a response of the wrong type
 *
 * Not the peer's fault (scorers should ignore these):
 * - `aborted`: the caller's own signal fired, or the messenger was stopped
 * - `overloaded`: a local bound was hit (queue full, too many peers, too many streams)
 */
export type FailureReason = 'dial-timeout' | 'dial-refused' | 'protocol-unsupported' | 'stream-reset' | 'timeout' | 'bad-response' | 'aborted' | 'overloaded'

/**
 * An outbound request (or the dial it needed) failed. `reason` says why, `peer`
 * is the remote peer id as a string.
 */
export class RequestFailedError extends Error {
  name = 'RequestFailedError'
  code = 'ERR_REQUEST_FAILED'
  readonly reason: FailureReason
  readonly peer: string

  constructor (reason: FailureReason, peer: string, message?: string, options?: { cause?: unknown }) {
    super(message ?? `Request to ${peer} failed: ${reason}`, options)
    this.reason = reason
    this.peer = peer
  }
}

/**
 * An inbound message was malformed (undecodable, oversize, unknown type) or
 * otherwise unexpected.
 */
export class InvalidMessageError extends Error {
  name = 'InvalidDhtMessageError'
  code = 'ERR_INVALID_MESSAGE'
}

/**
 * A message we were asked to send encodes to more than the configured maximum
 * message size. Raised locally, before anything is written.
 */
export class MessageTooLargeError extends Error {
  name = 'MessageTooLargeError'
  code = 'ERR_MESSAGE_TOO_LARGE'
}

/** A provide or put found no DHT server to store the record on */
export class NoPeersError extends Error {
  name = 'NoPeersError'
  code = 'ERR_NO_PEERS'
}

/** A put reached peers, but none of them stored the record */
export class PutFailedError extends Error {
  name = 'PutFailedError'
  code = 'ERR_PUT_FAILED'
}

/**
 * An inbound message was refused because its peer is over its request rate
 * (the wait for a token would exceed the handler's `maxRequestDelay`).
 */
export class RateLimitedError extends Error {
  name = 'RateLimitedError'
  code = 'ERR_RATE_LIMITED'
}

/** Serving an inbound message was abandoned: the handler timed out, the stream ended, or the handler stopped */
export class HandlerAbortedError extends Error {
  name = 'HandlerAbortedError'
  code = 'ERR_HANDLER_ABORTED'
}

/**
 * The DHT service is stopped (or stopped while the call waited): a lookup
 * that would start after `stop()`, or a provide still waiting in the
 * provide batcher, rejects with it rather than waiting for ever.
 */
export class ServiceStoppedError extends Error {
  name = 'ServiceStoppedError'
}
