export { checkpoint, customVjp, grad, jvp, valueAndGrad, vjp, type GradOptions } from './api.js';
export { jvpProgram } from './jvp_program.js';
export { vjpProgram, type Linearized } from './vjp_program.js';
