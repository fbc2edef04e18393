// javascript/*.js files are added to the page, in file-name order, once it loads.
// Keep to your own elements; here: mark the page so you (and the tests) can see the script ran.
document.documentElement.dataset.exampleTab = "loaded";
