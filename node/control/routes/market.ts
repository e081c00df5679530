// The marketplace's calls: trusting an agency, publishing, searching, buying and playing,
// settling purchases, and the ciphertext this node holds.
import { X509Certificate } from 'node:crypto'
import { keywordsOf } from '../../discovery/keywords.ts'
import { exportContent, importContent } from '../../market/media.ts'
import { UnknownContentError } from '../../content/store.ts'
import { BuyerRole } from '../../roles/buyer.ts'
import { SellerRole } from '../../roles/seller.ts'
import { parseAgencyAddress } from './shared.ts'
import type { Routes } from './shared.ts'
import type { KeyfairNode } from '../../keyfair-node.ts'

type MarketCall = 'trust' | 'publish' | 'search' | 'quote' | 'buy' | 'play' | 'library' | 'renew' | 'purchases' |
'confirm' | 'dispute' | 'contents' | 'remove' | 'export' | 'import'

export function marketRoutes (node: KeyfairNode): Routes<MarketCall> {
  return {
    trust: async ({ agency }, signal) => {
      parseAgencyAddress(agency)
      const record = await node.market.trust.set(agency, undefined, { signal })
      return { agency: record.address, root: new X509Certificate(record.root).fingerprint256 }
    },
    publish: async ({ file, validDays, open, ...request }, signal, progress) => node.role(SellerRole).seller.publish(file, {
      ...request,
      validForMs: validDays != null ? validDays * 86_400_000 : undefined,
      open: open === true,
      signal,
      onProgress: progress
    }),
    search: async ({ words, timeoutMs }, signal) => ({ offers: await node.role(BuyerRole).buyer.search(words, { signal, timeoutMs }) }),
    quote: async ({ offer }, signal) => node.role(BuyerRole).buyer.quote(offer, { signal }),
    buy: async ({ offer, output, seed, from, inflightBytes }, signal, progress) => node.role(BuyerRole).buyer.buy(offer, { output, seed: seed === true, from, inflightBytes, signal, onProgress: progress }),
    play: async ({ content, output }, _signal, progress) => node.role(BuyerRole).buyer.play(content, output, progress),
    library: async () => ({ licences: await node.device.library() }),
    renew: async ({ content }, signal) => node.role(BuyerRole).buyer.renew(content, { signal }),
    purchases: async () => ({ purchases: await node.device.purchases() }),
    confirm: async ({ purchase }) => node.role(BuyerRole).buyer.confirm(purchase),
    dispute: async ({ purchase, chunk }) => node.role(BuyerRole).buyer.dispute(purchase, chunk != null ? { index: chunk } : undefined),
    contents: async () => ({ contents: await node.market.content.list() }),
    remove: async ({ content }, signal) => {
      if (await node.market.content.manifest(content) == null) throw new UnknownContentError(content)
      await node.discovery.withdraw(content, { signal })
      await node.market.content.remove(content)
      return { content, removed: true }
    },
    export: async ({ content, path }) => exportContent(node.market, content, path),
    import: async ({ path, seed }, signal) => {
      const imported = await importContent(node.market, path, { seed: seed === true })
      if (imported.seeding) {
        const offer = await node.market.knownOffer(imported.offers[0] ?? '')
        await node.announce(imported.content, keywordsOf(offer.body.title, ...offer.body.tags), signal, imported.offers)
      }
      return imported
    }
  }
}
