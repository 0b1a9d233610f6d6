#!/usr/bin/env node
/*
 * Build the example workflows IN the real ComfyUI front end, so both formats are what the
 * front end itself writes: the UI format (app.graph.serialize(), for workflows/) and its API
 * twin (app.graphToPrompt(), for workflows/api/). The graphs are described once, below.
 *
 * The API twins differ in one way only (API_OVERRIDES): the processing resolution is the sample
 * clip's own size, so that they finish in minutes on a CPU with the tiny test model (the UNet
 * at 768 px takes about 15 s per snippet there); the UI templates keep the presets' 768/1024.
 *
 * Needs a running ComfyUI with this pack loaded and playwright-core + Chromium
 * (see the README, "How it was checked"):
 *   NODE_PATH=$UICHECK_DIR/node_modules node tools/build_workflows.js --url http://127.0.0.1:8188 [--out workflows]
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const CLIP = 'rollingdepth_sample.mp4';
const DEPTH_CLIP = 'rollingdepth_sample_depth.mp4';
const PLATE = 'rollingdepth_plate/rollingdepth_plate.####.exr';

// A graph: nodes {key: [type, {widget: value}, [x, y], title?, [w, h]?]} and links [from, output, to, input]
// (outputs and inputs by name). Notes are front-end-only nodes (not in the API twin).
const NOTE_INPUT = `Sample clips: copy ${CLIP} and ${DEPTH_CLIP} from this pack's workflows/input/ folder into ComfyUI/input/ (or pick your own video).\n` +
  'Model: RollingDepth Load Model downloads prs-eth/rollingdepth-v1-0 into models/rollingdepth/ on first use.\n' +
  'The RollingDepth nodes read the VIDEO directly, decoded lazily at processing size (long clips never fill RAM); an IMAGE batch works too.';

const NOTE_PLATE = 'Sample plate: copy the folder rollingdepth_plate/ from this pack\'s workflows/input/ into ComfyUI/input/ ' +
  '(24 half-float EXR frames 1001-1024, scene-linear Rec.709, 23.976 fps; made by tools/make_sample_plate.py), or give your own pattern ' +
  '(plate.####.exr, plate.%04d.dpx, an absolute path).\n' +
  'Load Plate Sequence checks every frame first (missing ones are listed by number), then reads them lazily and converts ' +
  'their colour with OpenColorIO (auto: float EXR = scene-linear through the ACES 2.0 SDR view; 8/16-bit = sRGB).\n' +
  'Convert Depth, planes: the clip\'s nearest surfaces at 1 m, farthest at 8 m (linear Z). For a fit to known distances, ' +
  'set mode = fit and paste rollingdepth_plate/points.txt (frame x y Z) into points: the report gives the residual.\n' +
  'Save Depth writes output/rollingdepth/plate_z_00001_exr/plate_z.depth.1001.exr ... (channel depth.Z, Z in m, and ' +
  'depth.spread: how much the snippets disagree), at the plate\'s size, with what the values are in the EXR metadata.';

function videoIn(x, y) {
  return {
    video: ['LoadVideo', { file: CLIP }, [x, y]],
    frames: ['GetVideoComponents', {}, [x, y + 330]],
    model: ['RollingDepthLoadModel', {}, [x, y + 470]],
  };
}
const videoLinks = [['video', 'VIDEO', 'frames', 'video']];

function videoOut(key, x, y, prefix, imagesFrom) {
  return {
    nodes: {
      [key + '_video']: ['CreateVideo', {}, [x, y]],
      [key + '_save']: ['SaveVideo', { filename_prefix: prefix }, [x, y + 130]],
    },
    links: [
      [imagesFrom[0], imagesFrom[1], key + '_video', 'images'],
      ['frames', 'fps', key + '_video', 'fps'],
      ['frames', 'audio', key + '_video', 'audio'],
      [key + '_video', 'VIDEO', key + '_save', 'video'],
    ],
  };
}

function merge(...parts) {
  const out = { nodes: {}, links: [] };
  for (const p of parts) { Object.assign(out.nodes, p.nodes || {}); out.links.push(...(p.links || [])); }
  return out;
}

const WORKFLOWS = {
  '00_one_node_fast': merge(
    { nodes: { ...videoIn(40, 60), note: ['Note', { text: NOTE_INPUT + '\n\nThe whole method in one node; presets fast / fast1024 / full / paper.' }, [40, 760], undefined, [330, 230]] }, links: videoLinks },
    { nodes: { rd: ['RollingDepth', { preset: 'fast' }, [400, 200]] },
      links: [['model', 'model', 'rd', 'model'], ['video', 'VIDEO', 'rd', 'video']] },
    videoOut('out', 760, 200, 'rollingdepth/one_node', ['rd', 'preview']),
  ),
  '01_video_depth_fast_stages': merge(
    { nodes: { ...videoIn(40, 60), note: ['Note', { text: NOTE_INPUT + '\n\nFast preset, stage by stage: change Co-align settings and queue again: only Co-align and what follows re-run.' }, [40, 760], undefined, [330, 230]] }, links: videoLinks },
    { nodes: {
        plan: ['RollingDepthSampleSnippets', { dilations: '1,25' }, [400, 60]],
        plan_text: ['PreviewAny', {}, [400, 330]],
        denoise: ['RollingDepthDenoiseSnippets', { processing_resolution: 768 }, [760, 60]],
        coalign: ['RollingDepthCoalign', {}, [1100, 60]],
        report: ['PreviewAny', {}, [1100, 420]],
        image: ['RollingDepthDepthToImage', { colormap: 'gray' }, [1440, 60]],
      },
      links: [
        ['video', 'VIDEO', 'plan', 'video'], ['plan', 'summary', 'plan_text', 'source'],
        ['model', 'model', 'denoise', 'model'], ['video', 'VIDEO', 'denoise', 'video'], ['plan', 'plan', 'denoise', 'plan'],
        ['denoise', 'snippet_depths', 'coalign', 'snippet_depths'], ['coalign', 'report', 'report', 'source'],
        ['coalign', 'depth', 'image', 'depth'],
      ] },
    videoOut('out', 1780, 60, 'rollingdepth/fast', ['image', 'images']),
  ),
  '02_full_quality_refine_exr': merge(
    { nodes: { ...videoIn(40, 60), note: ['Note', { text: NOTE_INPUT + '\n\nFull preset: 1024 px, dilations 1,10,25, 10 refinement steps; raw depth saved as float32 EXR (+16-bit PNG) in output/rollingdepth/.' }, [40, 760], undefined, [330, 230]] }, links: videoLinks },
    { nodes: {
        plan: ['RollingDepthSampleSnippets', { dilations: '1,10,25' }, [400, 60]],
        denoise: ['RollingDepthDenoiseSnippets', { processing_resolution: 1024 }, [760, 60]],
        coalign: ['RollingDepthCoalign', {}, [1100, 60]],
        refine: ['RollingDepthRefine', { num_steps: 10 }, [1440, 60]],
        // Save Depth and Save Video each count their own takes: distinct prefixes keep the numbers of a
        // run's depth files and its video the same (full_depth_00003_exr <-> full_preview_00003.mp4)
        save: ['RollingDepthSaveDepth', { filename_prefix: 'rollingdepth/full_depth', save_exr: true, save_png16: true }, [1780, 60]],
        paths: ['PreviewAny', {}, [1780, 300]],
        image: ['RollingDepthDepthToImage', { colormap: 'Spectral' }, [1780, 470]],
      },
      links: [
        ['video', 'VIDEO', 'plan', 'video'],
        ['model', 'model', 'denoise', 'model'], ['video', 'VIDEO', 'denoise', 'video'], ['plan', 'plan', 'denoise', 'plan'],
        ['denoise', 'snippet_depths', 'coalign', 'snippet_depths'],
        ['model', 'model', 'refine', 'model'], ['video', 'VIDEO', 'refine', 'video'], ['coalign', 'depth', 'refine', 'depth'],
        ['refine', 'depth', 'save', 'depth'], ['save', 'paths', 'paths', 'source'], ['refine', 'depth', 'image', 'depth'],
      ] },
    videoOut('out', 2120, 470, 'rollingdepth/full_preview', ['image', 'images']),
  ),
  '03_compare_coalign_settings': merge(
    { nodes: { ...videoIn(40, 60), note: ['Note', { text: NOTE_INPUT + '\n\nOne Denoise, two Co-align settings side by side (left: fast solver of the reference objective, right: robust solver, which drifts less over long clips). Denoise runs once.' }, [40, 760], undefined, [330, 230]] }, links: videoLinks },
    { nodes: {
        plan: ['RollingDepthSampleSnippets', { dilations: '1,10,25' }, [400, 60]],
        denoise: ['RollingDepthDenoiseSnippets', { processing_resolution: 768 }, [760, 60]],
        coalign_a: ['RollingDepthCoalign', { method: 'fast' }, [1100, 60], 'Co-align A (fast)'],
        coalign_b: ['RollingDepthCoalign', { method: 'robust' }, [1100, 420], 'Co-align B (robust)'],
        report_a: ['PreviewAny', {}, [1440, 300]],
        report_b: ['PreviewAny', {}, [1440, 660]],
        image_a: ['RollingDepthDepthToImage', { colormap: 'Spectral' }, [1440, 60]],
        image_b: ['RollingDepthDepthToImage', { colormap: 'Spectral' }, [1440, 420]],
        stitch: ['ImageStitch', { direction: 'right', spacing_width: 4 }, [1780, 60]],
      },
      links: [
        ['video', 'VIDEO', 'plan', 'video'],
        ['model', 'model', 'denoise', 'model'], ['video', 'VIDEO', 'denoise', 'video'], ['plan', 'plan', 'denoise', 'plan'],
        ['denoise', 'snippet_depths', 'coalign_a', 'snippet_depths'], ['denoise', 'snippet_depths', 'coalign_b', 'snippet_depths'],
        ['coalign_a', 'report', 'report_a', 'source'], ['coalign_b', 'report', 'report_b', 'source'],
        ['coalign_a', 'depth', 'image_a', 'depth'], ['coalign_b', 'depth', 'image_b', 'depth'],
        ['image_a', 'images', 'stitch', 'image1'], ['image_b', 'images', 'stitch', 'image2'],
      ] },
    videoOut('out', 2120, 60, 'rollingdepth/compare_coalign', ['stitch', 'IMAGE']),
  ),
  '04_refine_other_depth': merge(
    { nodes: { ...videoIn(40, 60), note: ['Note', { text: NOTE_INPUT + '\n\nRefine depth that came from elsewhere: here a depth video loaded from disk (nearer = brighter); put any depth node\'s IMAGE output into Image to depth instead.' }, [40, 760], undefined, [330, 230]] }, links: videoLinks },
    { nodes: {
        depth_video: ['LoadVideo', { file: DEPTH_CLIP }, [400, 60], 'Load depth video (from another tool)'],
        depth_frames: ['GetVideoComponents', {}, [400, 390]],
        to_depth: ['RollingDepthImageToDepth', { source: 'inverse_depth' }, [760, 60]],
        refine: ['RollingDepthRefine', { num_steps: 10, processing_resolution: 768 }, [1100, 60]],
        image: ['RollingDepthDepthToImage', { colormap: 'Spectral' }, [1440, 60]],
        before: ['RollingDepthDepthToImage', { colormap: 'Spectral' }, [1440, 330], 'Depth to image (before)'],
        stitch: ['ImageStitch', { direction: 'right', match_image_size: true, spacing_width: 4 }, [1780, 60]],
      },
      links: [
        ['depth_video', 'VIDEO', 'depth_frames', 'video'], ['depth_frames', 'images', 'to_depth', 'images'],
        ['model', 'model', 'refine', 'model'], ['video', 'VIDEO', 'refine', 'video'], ['to_depth', 'depth', 'refine', 'depth'],
        ['refine', 'depth', 'image', 'depth'], ['to_depth', 'depth', 'before', 'depth'],
        ['before', 'images', 'stitch', 'image1'], ['image', 'images', 'stitch', 'image2'],
      ] },
    videoOut('out', 2120, 60, 'rollingdepth/refined_other', ['stitch', 'IMAGE']),
  ),
  '05_plate_exr_to_linear_z': {
    nodes: {
      plate: ['RollingDepthLoadPlateSequence', { sequence: PLATE, colour_space: 'auto' }, [40, 60]],
      info: ['PreviewAny', {}, [40, 420]],
      model: ['RollingDepthLoadModel', {}, [40, 620]],
      note: ['Note', { text: NOTE_PLATE }, [40, 800], undefined, [360, 330]],
      plan: ['RollingDepthSampleSnippets', { dilations: '1,25' }, [440, 60]],
      denoise: ['RollingDepthDenoiseSnippets', { processing_resolution: 768 }, [780, 60]],
      coalign: ['RollingDepthCoalign', {}, [1120, 60]],
      convert: ['RollingDepthConvertDepth', { mode: 'planes', near: 1.0, far: 8.0, units: 'm' }, [1460, 60]],
      report: ['PreviewAny', {}, [1460, 600]],
      save: ['RollingDepthSaveDepth', { filename_prefix: 'rollingdepth/plate_z', save_exr: true, exr_channel: 'depth.Z', save_spread: true }, [1880, 60]],
      paths: ['PreviewAny', {}, [1880, 450]],
      image: ['RollingDepthDepthToImage', { colormap: 'Spectral' }, [2240, 60]],
      preview: ['PreviewImage', {}, [2240, 330], undefined, [300, 260]],
    },
    links: [
      ['plate', 'info', 'info', 'source'],
      ['plate', 'video', 'plan', 'video'],
      ['model', 'model', 'denoise', 'model'], ['plate', 'video', 'denoise', 'video'], ['plan', 'plan', 'denoise', 'plan'],
      ['denoise', 'snippet_depths', 'coalign', 'snippet_depths'],
      ['coalign', 'depth', 'convert', 'depth'], ['convert', 'report', 'report', 'source'],
      ['convert', 'depth', 'save', 'depth'], ['save', 'paths', 'paths', 'source'],
      ['convert', 'depth', 'image', 'depth'], ['image', 'images', 'preview', 'images'],
    ],
  },
};

// widget -> value used in the API twins (see the header)
const API_OVERRIDES = { processing_resolution: 0, resolution_override: 128 };

function applyOverrides(api) {
  for (const node of Object.values(api)) {
    for (const [name, value] of Object.entries(API_OVERRIDES)) {
      if (name in node.inputs && !Array.isArray(node.inputs[name])) node.inputs[name] = value;
    }
  }
  return api;
}

function parseArgs(argv) {
  const a = { url: 'http://127.0.0.1:8188', out: 'workflows', chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--url') a.url = argv[++i].replace(/\/+$/, '');
    else if (argv[i] === '--out') a.out = argv[++i];
    else if (argv[i] === '--chromium') a.chromium = argv[++i];
    else { console.error(`unknown argument ${argv[i]}`); process.exit(2); }
  }
  return a;
}

async function build(page, spec) {
  return page.evaluate((spec) => {
    const app = window.app;
    app.graph.clear();
    const made = {};
    for (const [key, [type, widgets, pos, title, size]] of Object.entries(spec.nodes)) {
      const node = window.LiteGraph.createNode(type);
      if (!node) throw new Error(`unknown node type ${type}`);
      app.graph.add(node);
      node.pos = pos;
      if (title) {
        node.title = title;
        // wide enough for the whole title (the default width is the node type's): measured in the
        // title font, plus room for the collapse dot on the left and the badges on the right
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = window.LiteGraph.NODE_TEXT_SIZE + 'px ' + (window.LiteGraph.NODE_FONT || 'Arial');
        const need = Math.ceil(ctx.measureText(title).width) + window.LiteGraph.NODE_TITLE_HEIGHT + 90;
        if (node.size[0] < need) node.size = [need, node.size[1]];
      }
      if (size) node.size = size;
      for (const [name, value] of Object.entries(widgets)) {
        const widget = (node.widgets || []).find((w) => w.name === name);
        if (!widget) throw new Error(`${type} has no widget ${name}`);
        widget.value = value;
      }
      made[key] = node;
    }
    for (const [from, output, to, input] of spec.links) {
      const source = made[from], target = made[to];
      const out = source.outputs.findIndex((o) => o.name === output);
      const inp = target.inputs.findIndex((i) => i.name === input);
      if (out < 0 || inp < 0) throw new Error(`no slot ${from}.${output} -> ${to}.${input}`);
      if (!source.connect(out, target, inp)) throw new Error(`cannot link ${from}.${output} -> ${to}.${input}`);
    }
    app.graph.setDirtyCanvas(true, true);
    return null;
  }, spec).then(() => page.evaluate(async () => {
    const ui = window.app.graph.serialize();
    const api = (await window.app.graphToPrompt()).output;
    return { ui, api };
  }));
}

(async () => {
  const a = parseArgs(process.argv.slice(2));
  const browser = await chromium.launch({ executablePath: a.chromium, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  const origin = new URL(a.url).origin;
  const page = await browser.newPage();
  await page.route((u) => !['data:', 'blob:'].includes(u.protocol) && u.origin !== origin, (r) => r.abort());
  await page.goto(a.url + '/');
  await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph &&
    Object.keys(window.LiteGraph.registered_node_types).length > 100, null, { timeout: 90000 });
  // the front end loads its default (or last) workflow just after start-up: let it finish, or it
  // replaces the first graph built here
  await page.waitForTimeout(5000);
  fs.mkdirSync(path.join(a.out, 'api'), { recursive: true });
  for (const [name, spec] of Object.entries(WORKFLOWS)) {
    const { ui, api } = await build(page, spec);
    fs.writeFileSync(path.join(a.out, `${name}.json`), JSON.stringify(ui, null, 2) + '\n');
    fs.writeFileSync(path.join(a.out, 'api', `${name}.json`), JSON.stringify(applyOverrides(api), null, 2) + '\n');
    console.log(`${name}: ${ui.nodes.length} nodes, ${ui.links.length} links, ${Object.keys(api).length} API nodes`);
  }
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
