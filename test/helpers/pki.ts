import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { createCsr, deviceIdOf } from '../../device/pki/index.ts'
import type { KeyObject } from 'node:crypto'

export interface RsaPair {
  privateKey: KeyObject
  publicKey: KeyObject
}

export function rsaPair (bits = 2048): RsaPair {
  return generateKeyPairSync('rsa', { modulusLength: bits })
}

export interface DeviceKeys {
  signing: RsaPair
  encryption: RsaPair
  deviceId: string
}

export function deviceKeys (): DeviceKeys {
  const signing = rsaPair()
  return { signing, encryption: rsaPair(), deviceId: deviceIdOf(signing.publicKey) }
}

/** The two CSRs a device sends: both named by the device id of the signing key. */
export function deviceCsrs (keys: DeviceKeys): { signing: string, encryption: string } {
  const subject = { commonName: keys.deviceId, organizationalUnit: 'keyfair device' }
  return {
    signing: createCsr(keys.signing.privateKey, keys.signing.publicKey, subject),
    encryption: createCsr(keys.encryption.privateKey, keys.encryption.publicKey, subject)
  }
}

export function escrowCsr (pair: RsaPair, peerId: string): string {
  return createCsr(pair.privateKey, pair.publicKey, { commonName: peerId, organizationalUnit: 'keyfair escrow' })
}

/** Flips one byte inside the signature (the last base64 line before the END marker). */
export function tamperPem (pem: string): string {
  const lines = pem.trimEnd().split('\n')
  const i = lines.length - 2
  const line = lines[i]!
  const c = line[5] === 'A' ? 'B' : 'A'
  lines[i] = line.slice(0, 5) + c + line.slice(6)
  return lines.join('\n') + '\n'
}

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

/** The real openssl CLI. */
export async function openssl (args: string[]): Promise<ExecResult> {
  return new Promise(resolve => {
    execFile('openssl', args, { encoding: 'utf8' }, (err: any, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}
