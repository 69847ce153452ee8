import { useEffect, useState } from 'preact/hooks';
import { currentRoute, type Route } from './session-storage.js';

/** The route in the address's fragment (`#/c/<id>`, `#/invite/<token>`), followed as it changes. */
export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const onChange = () => setRoute(currentRoute());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
