// Escrow: the accounts this escrow holds money for, its holds and ledger (filtered), the
// ledger's audit, and deposits and withdrawals, each confirmed before it is booked.
import { useState } from 'preact/hooks'
import { formatMoney } from '../../../node/format.ts'
import { asCallError, call } from '../api.ts'
import type { AnswerOf, CallError, RequestOf } from '../api.ts'
import { ConfirmButton, ErrorBox, Field, Id, Live, Section, Select, useCall, when } from '../components.tsx'

type Kind = NonNullable<RequestOf<'escrow.ledger'>['kind']>
type HoldState = NonNullable<RequestOf<'escrow.holds'>['state']>

const KINDS: ReadonlyArray<readonly [Kind | '', string]> = [['', 'any'], ['deposit', 'deposit'], ['withdraw', 'withdraw'], ['hold', 'hold'], ['release', 'release'], ['refund', 'refund'], ['expire', 'expire']]
const STATES: ReadonlyArray<readonly [HoldState | '', string]> = [['', 'any'], ['open', 'open'], ['released', 'released'], ['refunded', 'refunded']]

export function EscrowPage (): preact.JSX.Element {
  const accounts = useCall('escrow.accounts', {})
  const [round, setRound] = useState(0)
  const changed = (): void => { accounts.reload(); setRound(r => r + 1) }
  return (
    <div>
      <Section title='Accounts' actions={<button type='button' onClick={changed}>Refresh</button>}>
        <ErrorBox error={accounts.error} what='Could not read the accounts' />
        {accounts.data != null && (
          <>
            <table class='list accounts'>
              <thead><tr><th scope='col'>Account</th><th scope='col' class='num'>Balance</th></tr></thead>
              <tbody>{accounts.data.accounts.map(a => <tr key={a.account}><td><Id value={a.account} /></td><td class='num'>{formatMoney(a.balance, accounts.data!.currency)}</td></tr>)}</tbody>
            </table>
            <p class='meta'>{accounts.data.openHolds} open hold(s) · amounts in {accounts.data.currency}</p>
          </>
        )}
      </Section>
      <Money currency={accounts.data?.currency ?? ''} onBooked={changed} />
      <Holds round={round} />
      <Ledger round={round} />
      <Audit round={round} />
    </div>
  )
}

function Money (props: { currency: string, onBooked: () => void }): preact.JSX.Element {
  const [account, setAccount] = useState('')
  const [amount, setAmount] = useState('')
  const [memo, setMemo] = useState('')
  const [done, setDone] = useState<string>()
  const [error, setError] = useState<CallError>()
  const book = async (what: 'escrow.deposit' | 'escrow.withdraw'): Promise<void> => {
    setError(undefined)
    setDone(undefined)
    try {
      // the escrow reads a decimal as major units of its currency, a whole number as minor units
      const r = await call(what, { account: account.trim(), amount: amount.trim(), ...(memo.trim() !== '' ? { memo: memo.trim() } : {}) })
      setDone(`${what === 'escrow.deposit' ? 'Deposited' : 'Withdrew'} ${amount.trim()}: ${r.account} now holds ${formatMoney(r.balance, r.currency)}`)
      props.onBooked()
    } catch (err) {
      setError(asCallError(err))
    }
  }
  const ready = account.trim() !== '' && amount.trim() !== ''
  return (
    <Section title='Deposit or withdraw'>
      <div class='grid'>
        <Field label='Account (peer id)' name='account' value={account} onInput={setAccount} />
        <Field label={`Amount${props.currency !== '' ? ` (${props.currency})` : ''}`} name='amount' value={amount} onInput={setAmount} hint='minor units (1250) or major units (12.50)' />
        <Field label='Memo (optional)' name='memo' value={memo} onInput={setMemo} />
      </div>
      <div class='actions'>
        <ConfirmButton label='Deposit' disabled={!ready} question={`Credit ${amount.trim()} to ${account.trim()}?`} onConfirm={() => book('escrow.deposit')} />
        <ConfirmButton label='Withdraw' disabled={!ready} question={`Debit ${amount.trim()} from ${account.trim()}?`} onConfirm={() => book('escrow.withdraw')} />
      </div>
      <Live>{done ?? ''}</Live>
      <ErrorBox error={error} what='Booking failed' />
    </Section>
  )
}

function Holds (props: { round: number }): preact.JSX.Element {
  const [state, setState] = useState<HoldState | ''>('')
  const [buyer, setBuyer] = useState('')
  const [filter, setFilter] = useState<RequestOf<'escrow.holds'>>({ limit: 200 })
  const holds = useCall('escrow.holds', filter, [filter, props.round])
  return (
    <Section title='Holds'>
      <form class='row' onSubmit={e => { e.preventDefault(); setFilter({ limit: 200, ...(state !== '' ? { state } : {}), ...(buyer.trim() !== '' ? { buyer: buyer.trim() } : {}) }) }}>
        <Select label='State' value={state} options={STATES} onChange={setState} />
        <Field label='Buyer (peer id)' value={buyer} onInput={setBuyer} />
        <button type='submit'>Filter</button>
      </form>
      <ErrorBox error={holds.error} what='Could not read the holds' />
      {holds.data?.holds.length === 0 && <p>No holds.</p>}
      {holds.data != null && holds.data.holds.length > 0 && (
        <table class='list holds'>
          <thead><tr><th scope='col'>Hold</th><th scope='col'>State</th><th scope='col' class='num'>Amount</th><th scope='col'>Buyer</th><th scope='col'>Seller</th><th scope='col'>Purchase</th><th scope='col'>Expires</th></tr></thead>
          <tbody>
            {holds.data.holds.map(h => (
              <tr key={h.id} data-purchase={h.purchase} class={`state-${h.state}`}>
                <td><Id value={h.id} /></td><td class='hold-state'>{h.state}{h.endReason != null ? ` (${h.endReason})` : ''}</td>
                <td class='num'>{formatMoney(h.amount, holds.data!.currency)}</td>
                <td><Id value={h.buyer} /></td><td><Id value={h.seller} /></td><td><Id value={h.purchase} /></td><td>{when(h.expiresAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  )
}

function Ledger (props: { round: number }): preact.JSX.Element {
  const [account, setAccount] = useState('')
  const [kind, setKind] = useState<Kind | ''>('')
  const [limit, setLimit] = useState('100')
  const [filter, setFilter] = useState<RequestOf<'escrow.ledger'>>({ limit: 100 })
  const ledger = useCall('escrow.ledger', filter, [filter, props.round])
  const apply = (e: Event): void => {
    e.preventDefault()
    const n = Number(limit)
    setFilter({ ...(account.trim() !== '' ? { account: account.trim() } : {}), ...(kind !== '' ? { kind } : {}), limit: Number.isInteger(n) && n > 0 ? n : 100 })
  }
  return (
    <Section title='Ledger'>
      <form class='row' onSubmit={apply}>
        <Field label='Account' value={account} onInput={setAccount} />
        <Select label='Kind' value={kind} options={KINDS} onChange={setKind} />
        <Field label='Most recent' value={limit} onInput={setLimit} />
        <button type='submit'>Filter</button>
      </form>
      <ErrorBox error={ledger.error} what='Could not read the ledger' />
      {ledger.data != null && (
        <table class='list ledger'>
          <thead><tr><th scope='col'>#</th><th scope='col'>When</th><th scope='col'>Kind</th><th scope='col' class='num'>Amount</th><th scope='col'>Account</th><th scope='col'>Memo</th></tr></thead>
          <tbody>
            {ledger.data.postings.map(p => (
              <tr key={p.entry}><td>{p.entry}</td><td>{when(p.at)}</td><td>{p.kind}</td><td class='num'>{formatMoney(p.amount, ledger.data!.currency)}</td><td><Id value={p.account} /></td><td>{p.memo ?? ''}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  )
}

function Audit (props: { round: number }): preact.JSX.Element {
  const [audit, setAudit] = useState<AnswerOf<'escrow.audit'>>()
  const [error, setError] = useState<CallError>()
  const run = async (): Promise<void> => {
    setError(undefined)
    try {
      setAudit(await call('escrow.audit', {}))
    } catch (err) {
      setError(asCallError(err))
    }
  }
  const money = (n: number): string => formatMoney(n, audit?.currency ?? '')
  return (
    <Section title='Audit' actions={<button type='button' onClick={() => { void run() }}>Run audit</button>}>
      <Live>{audit != null ? (audit.ok ? 'The ledger balances.' : `The ledger does NOT balance: ${audit.violations.length} violation(s).`) : ''}</Live>
      {audit != null && (
        <dl class={`terms ${audit.ok ? 'ok' : 'bad'}`} data-round={props.round}>
          <dt>Accounts</dt><dd>{audit.accounts}</dd>
          <dt>Deposits</dt><dd>{money(audit.deposits)}</dd>
          <dt>Withdrawals</dt><dd>{money(audit.withdrawals)}</dd>
          <dt>Held</dt><dd>{money(audit.held)}</dd>
          <dt>Holds</dt><dd>{audit.holds.open} open, {audit.holds.released} released, {audit.holds.refunded} refunded</dd>
          <dt>Reserved</dt><dd>{audit.reserved.open} open, {money(audit.reserved.amount)}</dd>
          {audit.violations.map((v, i) => <><dt key={`d${i}`}>Violation</dt><dd key={`v${i}`}>{v}</dd></>)}
        </dl>
      )}
      <ErrorBox error={error} what='Audit failed' />
    </Section>
  )
}
