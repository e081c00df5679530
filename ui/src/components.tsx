// Small building blocks every page uses: labelled fields, a live status line, errors with
// their reason, a two-step confirmation, and a hook that loads one call's answer.
import { useCallback, useEffect, useId, useState } from 'preact/hooks'
import type { ComponentChildren } from 'preact'
import { asCallError, call } from './api.ts'
import type { AnswerOf, CallError, CallName, RequestOf } from './api.ts'

export function Field (props: { label: string, value: string, onInput: (v: string) => void, placeholder?: string, name?: string, hint?: string }): preact.JSX.Element {
  const id = useId()
  return (
    <div class='field'>
      <label for={id}>{props.label}</label>
      <input id={id} name={props.name} type='text' value={props.value} placeholder={props.placeholder}
        aria-describedby={props.hint != null ? `${id}-hint` : undefined}
        onInput={e => { props.onInput(e.currentTarget.value) }} />
      {props.hint != null && <small id={`${id}-hint`} class='hint'>{props.hint}</small>}
    </div>
  )
}

export function Select<T extends string> (props: { label: string, value: T, options: ReadonlyArray<readonly [T, string]>, onChange: (v: T) => void }): preact.JSX.Element {
  const id = useId()
  return (
    <div class='field'>
      <label for={id}>{props.label}</label>
      <select id={id} value={props.value} onChange={e => { props.onChange(e.currentTarget.value as T) }}>
        {props.options.map(([value, text]) => <option key={value} value={value}>{text}</option>)}
      </select>
    </div>
  )
}

export function Check (props: { label: string, checked: boolean, onChange: (v: boolean) => void }): preact.JSX.Element {
  const id = useId()
  return (
    <div class='field check'>
      <input id={id} type='checkbox' checked={props.checked} onChange={e => { props.onChange(e.currentTarget.checked) }} />
      <label for={id}>{props.label}</label>
    </div>
  )
}

/** A failure as the user sees it: what failed, the node's reason and code, and each escrow's part */
export function ErrorBox (props: { error: CallError | undefined, what?: string }): preact.JSX.Element | null {
  const { error } = props
  if (error == null) return null
  const escrows = Array.isArray(error.details.escrows) ? error.details.escrows as Array<Record<string, unknown>> : []
  // a refusal's message lists each escrow on a line of its own: the list below says it per escrow
  const [summary, ...rest] = error.message.split('\n')
  const advice = escrows.length > 0 ? rest.filter(line => !/^\s+escrow /.test(line)) : rest
  return (
    <div class='error' role='alert'>
      <p><strong>{props.what ?? 'Failed'}:</strong> {summary} <code class='code'>{error.code}</code></p>
      {escrows.length > 0 && (
        <ul class='reasons'>
          {escrows.map((e, i) => (
            <li key={i}>
              escrow {String(e.j ?? i + 1)} <Id value={String(e.peer ?? '')} />: {String(e.message ?? e.reason ?? e.error ?? e.outcome ?? '')}
              {e.code != null && <> <code class='code'>{String(e.code)}</code></>}
            </li>
          ))}
        </ul>
      )}
      {advice.map((line, i) => <p key={i}>{line.trim()}</p>)}
    </div>
  )
}

/** A polite live region: progress and results are read out as they change */
export function Live (props: { children: ComponentChildren }): preact.JSX.Element {
  return <div class='live' role='status' aria-live='polite'>{props.children}</div>
}

/**
 * A button that asks before it acts: the first press shows what will happen and two
 * buttons, to go ahead or to cancel; the action runs only on the second.
 */
export function ConfirmButton (props: { label: string, question: string, confirmLabel?: string, disabled?: boolean, onConfirm: () => void | Promise<void>, danger?: boolean }): preact.JSX.Element {
  const [asking, setAsking] = useState(false)
  if (!asking) {
    return <button type='button' class={props.danger === true ? 'danger' : ''} disabled={props.disabled} onClick={() => { setAsking(true) }}>{props.label}</button>
  }
  return (
    <span class='confirm' role='group' aria-label={props.question}>
      <span class='question'>{props.question}</span>
      <button type='button' class={props.danger === true ? 'danger' : 'primary'} autoFocus
        onClick={() => { setAsking(false); void props.onConfirm() }}>{props.confirmLabel ?? `Yes, ${props.label.toLowerCase()}`}</button>
      <button type='button' onClick={() => { setAsking(false) }}>Cancel</button>
    </span>
  )
}

export interface Loaded<T> { data: T | undefined, error: CallError | undefined, loading: boolean, reload: () => void }

/** One call's answer, loaded when the page shows and again on `reload` */
export function useCall<N extends CallName> (name: N, request: RequestOf<N>, deps: unknown[] = []): Loaded<AnswerOf<N>> {
  const [data, setData] = useState<AnswerOf<N>>()
  const [error, setError] = useState<CallError>()
  const [loading, setLoading] = useState(true)
  const [round, setRound] = useState(0)
  useEffect(() => {
    const controller = new AbortController()
    setLoading(true)
    call(name, request, controller.signal).then(answer => {
      setData(answer)
      setError(undefined)
    }, (err: unknown) => {
      if (!controller.signal.aborted) setError(asCallError(err))
    }).finally(() => { if (!controller.signal.aborted) setLoading(false) })
    return () => { controller.abort() }
  }, [name, round, ...deps])
  const reload = useCallback(() => { setRound(r => r + 1) }, [])
  return { data, error, loading, reload }
}

/** A peer id or content id shortened for a table cell; the whole id in its title */
export function short (id: string): string {
  return id.length > 20 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id
}

export function Id (props: { value: string }): preact.JSX.Element {
  return <code class='id' title={props.value}>{short(props.value)}</code>
}

export function Section (props: { title: string, children: ComponentChildren, actions?: ComponentChildren }): preact.JSX.Element {
  return (
    <section class='card'>
      <header class='card-head'><h2>{props.title}</h2>{props.actions}</header>
      {props.children}
    </section>
  )
}

export function when (ms: number | undefined): string {
  return ms == null ? '' : new Date(ms).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' })
}
