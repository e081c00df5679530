// Revocation lists pushed over pubsub: the agency publishes each list it signs on a topic
// of its own, and every node that trusts the agency takes it from there within moments
// instead of waiting for its next fetch. The gossip layer is not trusted: a list is passed
// on (and handed to this node's trust stores) only if the agency root signed it and it is
// at least as new as the newest one seen on the topic; anything else is dropped, and a peer
// that keeps sending lists that fail the checks is not heard on the topic for a while.
import { createHash } from 'node:crypto'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { serviceCapabilities, serviceDependencies } from '@libp2p/interface'
import { bytesEqual } from '../../device/crypto/index.ts'
import { BadCertificateError, CrlStaleError, TrustStore, decodePem } from '../../device/pki/index.ts'
import type { CrlInfo } from '../../device/pki/index.ts'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type { ComponentLogger, Logger, PeerId, Startable } from '@libp2p/interface'

/** What the CRL feed provides to the services that declare they depend on it */
export const CRL_FEED_CAPABILITY = 'keyfair:crl-feed'

/** Topics are this prefix and the SHA-256 of the agency root (DER, hex): two agencies never share one */
export const CRL_TOPIC_PREFIX = '/keyfair/crl/1.0.0/'

/** The pubsub topic on which the agency with this root publishes its revocation lists */
export function crlTopic (rootPem: string): string {
  const der = decodePem(rootPem, 'CERTIFICATE')
  if (der == null) throw new BadCertificateError('the agency root is not one PEM certificate')
  return CRL_TOPIC_PREFIX + createHash('sha256').update(der).digest('hex')
}

/**
 * A peer that sent this many lists that fail the checks is not heard on the topic for the
 * rest of the window: each check parses up to a megabyte and verifies a signature, and
 * an honest peer only passes on lists that passed its own checks.
 */
export const MAX_REFUSED_PER_PEER = 5
export const REFUSED_WINDOW_MS = 60_000
const MAX_REFUSING_PEERS = 1000

/** Called with each list that passed the checks, newest or equal to the newest seen; the listener's own trust store decides */
export type CrlListener = (der: Uint8Array, info: CrlInfo) => void

export interface CrlFeedComponents {
  pubsub: GossipSub
  logger: ComponentLogger
}

interface Followed {
  topic: string
  /** the newest list seen on the topic, checked against the root */
  trust: TrustStore
  listeners: Set<CrlListener>
  subscribed: boolean
}

export class CrlFeed implements Startable {
  private readonly components: CrlFeedComponents
  private readonly log: Logger
  private readonly followed = new Map<string, Followed>()
  private running = false
  /** peers whose lists failed the checks: how many, since when */
  private readonly refused = new Map<string, { count: number, since: number }>()

  constructor (components: CrlFeedComponents) {
    this.components = components
    this.log = components.logger.forComponent('keyfair:crl-feed')
  }

  readonly [Symbol.toStringTag] = 'keyfair:crl-feed'
  readonly [serviceCapabilities] = [CRL_FEED_CAPABILITY]
  readonly [serviceDependencies] = ['@libp2p/pubsub']

  /** read when used: libp2p may create the pubsub service after this one */
  private get pubsub (): GossipSub {
    return this.components.pubsub
  }

  private readonly onMessage = (event: CustomEvent<Message>): void => {
    const followed = this.followed.get(event.detail.topic)
    if (followed == null) return
    const held = followed.trust.crl
    // the validator accepted exactly this list: it is the newest seen on the topic
    if (held == null || !bytesEqual(held.der, event.detail.data)) return
    for (const listener of followed.listeners) {
      try {
        listener(event.detail.data, held)
      } catch (err: any) {
        this.log.error('a CRL listener failed - %e', err)
      }
    }
  }

  start (): void {
    this.pubsub.addEventListener('message', this.onMessage)
  }

  /** pubsub is started by now: subscribe to what was followed before */
  afterStart (): void {
    this.running = true
    for (const followed of this.followed.values()) this.subscribe(followed)
  }

  stop (): void {
    this.running = false
    this.pubsub.removeEventListener('message', this.onMessage)
    for (const followed of this.followed.values()) {
      this.pubsub.topicValidators.delete(followed.topic)
      followed.subscribed = false
    }
  }

  /** Takes this agency's lists from its topic until the returned function is called */
  follow (rootPem: string, listener: CrlListener): () => void {
    const topic = crlTopic(rootPem)
    let followed = this.followed.get(topic)
    if (followed == null) {
      followed = { topic, trust: new TrustStore(rootPem), listeners: new Set(), subscribed: false }
      this.followed.set(topic, followed)
    }
    followed.listeners.add(listener)
    if (this.running) this.subscribe(followed)
    const entry = followed
    return () => {
      entry.listeners.delete(listener)
      if (entry.listeners.size > 0 || this.followed.get(topic) !== entry) return
      this.followed.delete(topic)
      this.pubsub.topicValidators.delete(topic)
      if (!entry.subscribed || !this.running) return
      try {
        this.pubsub.unsubscribe(topic)
      } catch (err) {
        // pubsub stops alongside the roles that follow topics: it may already have
        this.log('could not unsubscribe from %s - %e', topic, err)
      }
    }
  }

  /** Publishes a signed list on its agency's topic; resolves with the number of peers it went to (none is fine) */
  async publish (rootPem: string, der: Uint8Array): Promise<number> {
    const topic = crlTopic(rootPem)
    // the agency's own node knows its lists are newest: what it publishes it holds
    this.followed.get(topic)?.trust.setCrl(der)
    const result = await this.pubsub.publish(topic, der)
    return result.recipients.length
  }

  /** Peers known to take this agency's lists (diagnostics) */
  subscribers (rootPem: string): PeerId[] {
    return this.pubsub.getSubscribers(crlTopic(rootPem))
  }

  private subscribe (followed: Followed): void {
    if (followed.subscribed) return
    this.pubsub.topicValidators.set(followed.topic, (peer, message) => this.validate(followed, peer, message))
    this.pubsub.subscribe(followed.topic)
    followed.subscribed = true
    this.log('following revocation lists on %s', followed.topic)
  }

  private validate (followed: Followed, peer: PeerId, message: Message): TopicValidatorResult {
    const now = Date.now()
    const record = this.refused.get(peer.toString())
    if (record != null && now - record.since < REFUSED_WINDOW_MS && record.count >= MAX_REFUSED_PER_PEER) return TopicValidatorResult.Ignore
    try {
      const info = followed.trust.setCrl(message.data)
      if (bytesEqual(info.der, message.data)) return TopicValidatorResult.Accept
      this.log('ignoring an older revocation list from %p', peer)
      return TopicValidatorResult.Ignore
    } catch (err: any) {
      // a list that has simply expired may come from an honest peer that was offline
      if (err instanceof CrlStaleError) return TopicValidatorResult.Ignore
      this.log('refusing a revocation list from %p: %s', peer, err.code ?? err.message)
      if (record == null || now - record.since >= REFUSED_WINDOW_MS) {
        if (this.refused.size >= MAX_REFUSING_PEERS) this.refused.clear()
        this.refused.set(peer.toString(), { count: 1, since: now })
      } else {
        record.count++
      }
      return TopicValidatorResult.Reject
    }
  }
}
