// vtk.js's XML writer pulls xmlbuilder2, which needs Node's built-ins; the viewer never writes XML.
export default {};
export const create = () => { throw new Error("xmlbuilder2 is not bundled in the medai viewer"); };
