// The parts of Cornerstone3D the medai viewer uses, bundled into ../vendor/cornerstone.js by build.sh.
export {
  init, isCornerstoneInitialized, RenderingEngine, Enums, metaData, imageLoader, utilities, cache, eventTarget,
  EVENTS, getEffectiveRenderBackend, version,
} from "@cornerstonejs/core";
export {
  init as toolsInit, addTool, removeTool, ToolGroupManager, WindowLevelTool, PanTool, ZoomTool, Enums as ToolEnums,
} from "@cornerstonejs/tools";
