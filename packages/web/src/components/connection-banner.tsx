import type { ClientState } from '@parley/sdk';

/**
 * Says when the connection is not up, and that what is typed meanwhile will be sent once it is. The live region stays
 * in the page while connected, so screen readers announce the banner when it appears.
 */
export function ConnectionBanner({ state }: { state: ClientState }) {
  const text = state === 'open'
    ? ''
    : state === 'connecting'
      ? 'Connecting…'
      : state === 'reconnecting'
        ? 'Reconnecting… Messages you send now are delivered once the connection is back.'
        : 'Disconnected.';
  return <div class={text ? 'banner' : 'banner-idle'} role="status" data-state={state}>{text}</div>;
}
