export { checkpoint, customVjp, grad, jvp, valueAndGrad, vjp, type GradOptions, type GradsOf, type GradResult, type ValueAndGradResult, type AuxOf } from './api.js';
export { jvpProgram } from './jvp_program.js';
export { vjpProgram, type Linearized } from './vjp_program.js';
