// `keyfair agency …`: `init` works on the repo offline; the rest ask the node running `--role agency`.
import { readFile, writeFile } from 'node:fs/promises'
import { Command, Option } from 'commander'
import { encodePem } from '../device/pki/index.ts'
import { initAgency, REVOCATION_REASONS } from './agency/agency.ts'
import { BadRequestError } from './errors.ts'
import { print, repoOf } from './cli-output.ts'
import { call, integerFlag, parseDuration, passphraseFileOption, unlockOrCreateKeys } from './cli-call.ts'
import type { GlobalOptions } from './cli-output.ts'

export function addAgencyCommands (program: Command): void {
  const agency = program.command('agency')
    .description('the authentication agency (X.509 PKI): certifies devices and escrows, signs the revocation list')

  agency.command('init')
    .description('create the agency root CA: its key sealed in <repo>/keys, its certificate in <repo>/agency (offline; then: keyfair start --role agency)')
    .option('--bits <n>', 'RSA modulus of the root key', '3072')
    .option('--name <cn>', 'root certificate common name', 'keyfair agency')
    .option('--validity-days <n>', 'root certificate validity in days', '3650')
    .addOption(passphraseFileOption('the root key is sealed in the key store under it'))
    .action(async (opts, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>()
      const repo = repoOf(options)
      const settings = { bits: integerFlag(opts.bits, '--bits'), commonName: opts.name, validityDays: integerFlag(opts.validityDays, '--validity-days') }
      await repo.assertInitialised()
      const keys = await unlockOrCreateKeys(repo, opts.passphraseFile)
      let result
      try {
        result = await initAgency(repo.path, { keys, ...settings })
      } finally {
        keys.lock()
      }
      print(options, { dir: result.dir, fingerprint: result.fingerprint, root: result.root }, () => [
        `agency root created in ${result.dir}`,
        `root SHA-256 fingerprint ${result.fingerprint}`,
        `start it with: keyfair --repo ${repo.path} start --role agency`
      ].join('\n'))
    })

  agency.command('enroll-code')
    .description('a one-time enrollment code for one device or one escrow')
    .requiredOption('--for <kind>', 'device or escrow')
    .option('--ttl <duration>', 'how long the code stays valid: 30s, 15m, 2h, 7d', '15m')
    .action(async (opts, command: Command) => {
      if (opts.for !== 'device' && opts.for !== 'escrow') throw new BadRequestError("--for must be 'device' or 'escrow'")
      const result = await call(command, 'agency.enrollCode', { kind: opts.for, ttlMs: parseDuration(opts.ttl) })
      print(command.optsWithGlobals(), result, () => `${result.code}\n${result.kind} enrollment code, valid once, until ${result.expiresAt}`)
    })

  agency.command('issue')
    .description('certify a CSR file directly (the operator checked the requester out of band)')
    .argument('<csr-file>', 'PKCS#10 request, PEM')
    .requiredOption('--purpose <purpose>', 'device-signing, device-encryption or escrow')
    .option('--days <n>', 'validity in days (default: 365)')
    .option('--out <file>', 'write the certificate (PEM) here instead of stdout')
    .action(async (file: string, opts, command: Command) => {
      const csr = await readFile(file, 'utf8').catch((err: Error) => { throw new BadRequestError(`cannot read ${file}: ${err.message}`) })
      const body = { csr, purpose: opts.purpose, ...(opts.days == null ? {} : { validityDays: integerFlag(opts.days, '--days') }) }
      const result = await call(command, 'agency.issue', body)
      if (opts.out != null) await writeFile(opts.out, result.pem)
      print(command.optsWithGlobals(), result, () => opts.out == null
        ? result.pem.trimEnd()
        : `issued ${result.purpose} certificate ${result.serial} for ${result.subject}, valid until ${result.notAfter}: ${opts.out}`)
    })

  agency.command('revoke')
    .description('revoke every certificate of a serial, device id or escrow peer id, and re-sign the CRL')
    .argument('<target>', 'serial number (hex), device id or peer id')
    .addOption(new Option('--reason <reason>', 'CRL reason').choices(REVOCATION_REASONS).default('unspecified'))
    .action(async (target: string, opts, command: Command) => {
      const result = await call(
        command, 'agency.revoke', { target, reason: opts.reason })
      print(command.optsWithGlobals(), result, () => [
        ...result.revoked.map(c => `revoked ${c.serial} (${c.purpose} of ${c.subject})`),
        ...result.alreadyRevoked.map(s => `already revoked ${s}`),
        `CRL number ${result.crlNumber}`
      ].join('\n'))
    })

  agency.command('crl')
    .description('the current signed revocation list (PEM on stdout, or DER to --out)')
    .option('--out <file>', 'write the CRL (DER) here')
    .action(async (opts, command: Command) => {
      const result = await call(command, 'agency.crl')
      const der = Buffer.from(result.crl, 'base64')
      if (opts.out != null) await writeFile(opts.out, der)
      print(command.optsWithGlobals(), result, () => opts.out == null
        ? encodePem(der, 'X509 CRL').trimEnd()
        : `CRL number ${result.number}, ${result.revoked} revoked, next update ${result.nextUpdate}: ${opts.out}`)
    })

  agency.command('certs')
    .description('certificates the agency has issued')
    .action(async (_opts, command: Command) => {
      const result = await call(command, 'agency.certs')
      print(command.optsWithGlobals(), result, () => result.certificates.length === 0
        ? 'no certificates issued'
        : result.certificates.map(c => `${c.serial}  ${c.purpose.padEnd(17)}  ${c.subject}  until ${c.notAfter}${c.revokedAt == null ? '' : `  REVOKED ${c.revokedAt} (${c.reason ?? 'unspecified'})`}`).join('\n'))
    })
}
