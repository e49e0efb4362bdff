/**
 * DI tokens of the core (tsyringe). Tokens are typed symbols made by
 * `token<T>()`: a bare `Symbol()` assigned to an `InjectionToken<T>` const
 * loses `T`, and `resolve` would return `unknown`. The description is
 * namespaced (`vmbus.core.*`) so errors and traces say who owns a token.
 *
 * Every injected constructor parameter in the project names its token with
 * `@inject(TOKEN)` / `@injectAll(TOKEN)`, so nothing depends on
 * `design:paramtypes` metadata (which esbuild-based tools do not emit).
 */
import type { InjectionToken } from "tsyringe";

export function token<T>(name: string): InjectionToken<T> {
  return Symbol(name);
}
