// `keyfair device …`: the buyer node's sealed device, reached through the running node.
import { Command, Option } from 'commander'
import { PASSPHRASE_ENV, readPassphrase } from './passphrase.ts'
import { print } from './cli-output.ts'
import { call, integerFlag } from './cli-call.ts'
import type { DeviceRevocation } from './control/api.ts'

function revocationLines (r: DeviceRevocation): string[] {
  const seconds = (ms: number): string => ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`
  return [
    `revoked:     ${r.state === 'revoked' ? `yes (${r.reason ?? 'unspecified'}, ${r.revokedAt ?? 'date unknown'})` : r.state === 'valid' ? 'no' : `unknown: ${r.why ?? ''}`}`,
    ...(r.crl == null
      ? []
      : [`crl:         number ${r.crl.number}, signed ${seconds(r.crl.ageMs)} ago${r.crl.heardAt != null ? `, last heard ${seconds(Math.max(0, Date.now() - Date.parse(r.crl.heardAt)))} ago` : ''}`])
  ]
}

/** `keyfair device …`: the buyer node's sealed device, reached through the running node */
export function addDeviceCommands (program: Command): void {
  const device = program.command('device')
    .description('the sealed device of a buyer node: key store, enrollment with an agency')
  const passphraseFile = (): Option => new Option('--passphrase-file <file>', `read the passphrase from a file (mode 0600) instead of $${PASSPHRASE_ENV} or a prompt`)

  device.command('status')
    .description('whether the device is initialised, unlocked and enrolled, and whether the agency revoked it')
    .action(async (_opts, command: Command) => {
      const s = await call(command, 'device.status', {}, 30_000)
      const r = s.revocation
      print(command.optsWithGlobals(), s, () => [
        `device:      ${s.deviceId ?? '(none: run keyfair device init)'}`,
        `initialised: ${s.initialised ? 'yes' : 'no'}`,
        `unlocked:    ${s.unlocked ? 'yes' : 'no'}`,
        `enrolled:    ${s.enrolled ? (r?.state === 'revoked' ? 'yes, but REVOKED by the agency' : 'yes') : 'no'}`,
        ...(r == null ? [] : revocationLines(r))
      ].join('\n'))
    })

  device.command('init')
    .description('generate the device keys inside the sealed device and seal them under a passphrase')
    .addOption(passphraseFile())
    .option('--bits <n>', 'RSA key size of the signing and encryption keys', '3072')
    .action(async (opts, command: Command) => {
      const passphrase = await readPassphrase({ file: opts.passphraseFile, confirm: true, label: 'device passphrase' })
      const result = await call(command, 'device.init', { passphrase, bits: integerFlag(opts.bits, '--bits') })
      print(command.optsWithGlobals(), result, () => `device ${result.deviceId} initialised and unlocked\nnext: keyfair device enroll --agency <agency> --code <code>`)
    })

  device.command('unlock')
    .description('open the device key store with its passphrase')
    .addOption(passphraseFile())
    .action(async (opts, command: Command) => {
      const passphrase = await readPassphrase({ file: opts.passphraseFile, label: 'device passphrase' })
      const result = await call(command, 'device.unlock', { passphrase })
      print(command.optsWithGlobals(), result, () => `device ${result.deviceId} unlocked`)
    })

  device.command('lock')
    .description('drop the device secrets from memory until the next unlock')
    .action(async (_opts, command: Command) => {
      const result = await call(command, 'device.lock')
      print(command.optsWithGlobals(), result, () => 'device locked')
    })

  device.command('enroll')
    .description('get the device certified by an agency with a one-time enrollment code')
    .requiredOption('--agency <address>', "the agency's peer id, or its multiaddr ending in /p2p/<peer id>")
    .requiredOption('--code <code>', 'the one-time code the agency operator gave you')
    .action(async (opts, command: Command) => {
      const result = await call(command, 'device.enroll', { agency: opts.agency, code: opts.code }, 60_000)
      print(command.optsWithGlobals(), result, () => [
        `device ${result.deviceId ?? ''} enrolled`,
        `signing certificate    ${result.signingCertificate.serial} until ${result.signingCertificate.notAfter}`,
        `encryption certificate ${result.encryptionCertificate.serial} until ${result.encryptionCertificate.notAfter}`
      ].join('\n'))
    })

  device.command('certs')
    .description("print the device's certificates (PEM)")
    .action(async (_opts, command: Command) => {
      const result = await call(command, 'device.certificates')
      print(command.optsWithGlobals(), result, () => [result.signing, result.encryption, result.root].map(p => p.trim()).join('\n'))
    })
}
