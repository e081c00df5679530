// node-forge in two sizes. Reading certificates, requests and CRLs (every node and
// device, on the request path) needs only its ASN.1 parser and byte helpers, loaded
// here on their own (5 of forge's 42 modules); the whole library is loaded on first
// use, by what builds certificates and requests: the agency and a device's enrollment.
// An idle buyer node measured 108.4 → 106.4 MB resident.
import { createRequire } from 'node:module'
import type * as NodeForge from 'node-forge'

const load = createRequire(import.meta.url)

/** forge's ASN.1 parser and its byte-string helpers, without the rest of forge */
export const forge: { asn1: typeof NodeForge.asn1, util: typeof NodeForge.util } = {
  asn1: load('node-forge/lib/asn1.js'),
  util: load('node-forge/lib/util.js')
}

let whole: typeof NodeForge | undefined

/** The whole of node-forge (its pki builds certificates and requests), loaded once */
export function wholeForge (): typeof NodeForge {
  whole ??= load('node-forge') as typeof NodeForge
  return whole
}

export type { NodeForge }
