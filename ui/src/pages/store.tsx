// Store: find offers by keyword, read an offer's terms, buy it and watch the purchase live.
import { useState } from 'preact/hooks'
import { formatBytes, formatMoney } from '../../../node/format.ts'
import { asCallError, call, stream } from '../api.ts'
import type { AnswerOf, CallError } from '../api.ts'
import { ConfirmButton, ErrorBox, Field, Id, Live, Section } from '../components.tsx'
import { foldBuy, formatEta, startView } from './buy-progress.ts'
import type { BuyView } from './buy-progress.ts'

type Listing = AnswerOf<'search'>['offers'][number]

export function StorePage (): preact.JSX.Element {
  const [words, setWords] = useState('')
  const [offers, setOffers] = useState<Listing[]>()
  const [searching, setSearching] = useState(false)
  const [error, setError] = useState<CallError>()

  const search = async (e: Event): Promise<void> => {
    e.preventDefault()
    const list = words.split(/\s+/).filter(w => w !== '')
    if (list.length === 0) return
    setSearching(true)
    setError(undefined)
    try {
      setOffers((await call('search', { words: list })).offers)
    } catch (err) {
      setError(asCallError(err))
    } finally {
      setSearching(false)
    }
  }

  return (
    <div>
      <Section title='Search'>
        <form class='row' role='search' onSubmit={e => { void search(e) }}>
          <Field label='Keywords' name='words' value={words} onInput={setWords} placeholder='title words, tags or an offer id' />
          <button type='submit' class='primary' disabled={searching}>{searching ? 'Searching…' : 'Search'}</button>
        </form>
        <Live>{searching ? 'Searching the network…' : offers != null ? `${offers.length} offer(s) found` : ''}</Live>
        <ErrorBox error={error} what='Search failed' />
      </Section>
      {offers?.map(o => <Offer key={o.offer} listing={o} />)}
    </div>
  )
}

function Offer (props: { listing: Listing }): preact.JSX.Element {
  const o = props.listing
  const [view, setView] = useState<BuyView>()
  const [result, setResult] = useState<AnswerOf<'buy'>>()
  const [error, setError] = useState<CallError>()
  const [buying, setBuying] = useState(false)

  const buy = async (): Promise<void> => {
    setBuying(true)
    setError(undefined)
    setResult(undefined)
    let current = startView(Date.now())
    setView(current)
    try {
      const answer = await stream('buy', { offer: o.offer }, event => {
        current = foldBuy(current, event, Date.now())
        setView(current)
      })
      setResult(answer)
    } catch (err) {
      setError(asCallError(err))
    } finally {
      setBuying(false)
    }
  }

  const total = o.price * o.t
  return (
    <article class='card offer' data-offer={o.offer} aria-labelledby={`t-${o.offer}`}>
      <h3 id={`t-${o.offer}`}>{o.title}</h3>
      <dl class='terms'>
        <dt>Price</dt><dd>{formatMoney(o.price, o.currency)} to each of {o.t} escrows, {formatMoney(total, o.currency)} in total</dd>
        <dt>Escrows</dt><dd>{o.t}-of-{o.escrows}</dd>
        <dt>Size</dt><dd>{view != null && view.total > 0 ? formatBytes(view.total) : 'known once the download starts'}</dd>
        <dt>Providers</dt><dd>{o.providers}</dd>
        <dt>Licence</dt><dd>{o.open ? 'open: sells with the seller offline; t escrows together could learn the key' : 'device-bound: only this device can use it'}</dd>
        <dt>Tags</dt><dd>{o.tags.length > 0 ? o.tags.join(', ') : '—'}</dd>
        <dt>Offer</dt><dd><Id value={o.offer} /></dd>
        <dt>Seller</dt><dd><Id value={o.seller} /></dd>
      </dl>
      <div class='actions'>
        <ConfirmButton label='Buy' disabled={buying} question={`Buy '${o.title}' for ${formatMoney(total, o.currency)} (${formatMoney(o.price, o.currency)} to each of ${o.t} escrows)?`}
          confirmLabel={`Pay ${formatMoney(total, o.currency)}`} onConfirm={buy} />
      </div>
      {view != null && <Progress view={view} done={result != null} />}
      {result != null && <Bought result={result} />}
      <ErrorBox error={error} what='Purchase failed' />
    </article>
  )
}

function Progress (props: { view: BuyView, done: boolean }): preact.JSX.Element {
  const v = props.view
  return (
    <div class='progress' data-events={v.events}>
      <label class='bar'>
        <span>Download</span>
        <progress max={v.total > 0 ? v.total : 1} value={v.bytes} />
      </label>
      <Live>
        {props.done ? 'Bought. ' : ''}
        {formatBytes(v.bytes)} of {v.total > 0 ? formatBytes(v.total) : '…'} · {formatBytes(v.rate)}/s · {v.providers} provider(s) · time left {props.done ? '0 s' : formatEta(v.eta)}
        {v.played > 0 ? ` · ${formatBytes(v.played)} decrypted` : ''}
      </Live>
      {v.escrows.length > 0 && (
        <table class='escrows'>
          <caption>Escrows</caption>
          <thead><tr><th scope='col'>#</th><th scope='col'>Escrow</th><th scope='col'>State</th><th scope='col'>Shares</th></tr></thead>
          <tbody>
            {v.escrows.map(e => (
              <tr key={e.j} class={`state-${e.state}`}>
                <td>{e.j}</td><td><Id value={e.peer} /></td>
                <td>{e.state}{e.code != null && <> <code class='code'>{e.code}</code></>}</td>
                <td>{e.have} of {e.need}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {v.dropped.length > 0 && <ul class='reasons'>{v.dropped.map((d, i) => <li key={i}>provider <Id value={d.provider} /> dropped: {d.reason}</li>)}</ul>}
    </div>
  )
}

function Bought (props: { result: AnswerOf<'buy'> }): preact.JSX.Element {
  const r = props.result
  return (
    <div class='done'>
      <p>Paid {formatMoney(r.paid, r.currency)} in total ({formatMoney(r.price, r.currency)} to each escrow that accepted); {r.bound ? 'device-bound licence' : 'open shares'}. Play it in the Library.</p>
      <ul>{r.escrows.map(e => <li key={e.j}>escrow {e.j} <Id value={e.peer} />: {e.outcome}</li>)}</ul>
    </div>
  )
}
