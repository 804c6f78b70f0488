/** The CPU emitters' statement builder: the neutral ScopeBuilder speaking JavaScript. */
import { ScopeBuilder } from '../lower/scope_builder.js';
import { JS_DIALECT } from './js_dialect.js';

export { bufName } from '../lower/dialect.js';
export { numLit, storeValue, wrapInt } from './js_dialect.js';
export type { AccResolver, VarNames } from '../lower/scope_builder.js';

export class CodeBuilder extends ScopeBuilder {
  constructor() {
    super(JS_DIALECT);
  }
}
